package transport

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func validHello() Handshake {
	return Handshake{Magic: Magic, Version: Version, Cluster: "c", Node: 3, Inc: 7, Advertise: "10.0.0.1:7000"}
}

func TestHandshakeRoundTrip(t *testing.T) {
	h := validHello()
	b, err := EncodeHandshake(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHandshake(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("got %+v, want %+v", got, h)
	}
	if got.Peer() != (Peer{Node: 3, Inc: 7}) {
		t.Fatalf("Peer() = %v", got.Peer())
	}
}

func TestHandshakeInvalid(t *testing.T) {
	edits := map[string]func(*Handshake){
		"magic":          func(h *Handshake) { h.Magic = "lwgkiT" },
		"version":        func(h *Handshake) { h.Version = 2 },
		"empty cluster":  func(h *Handshake) { h.Cluster = "" },
		"long cluster":   func(h *Handshake) { h.Cluster = strings.Repeat("c", maxNameLen+1) },
		"long advertise": func(h *Handshake) { h.Advertise = strings.Repeat("a", maxNameLen+1) },
		"node 0":         func(h *Handshake) { h.Node = 0 },
		"incarnation 0":  func(h *Handshake) { h.Inc = 0 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			h := validHello()
			edit(&h)
			if _, err := EncodeHandshake(h); !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("EncodeHandshake: %v, want ErrBadHandshake", err)
			}
			// Encoded by hand, the decoder refuses it too.
			b, err := msgpack.Marshal(&wireHandshake{h.Magic, uint64(h.Version), h.Cluster, h.Node, h.Inc, h.Advertise})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeHandshake(b); !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("DecodeHandshake: %v, want ErrBadHandshake", err)
			}
		})
	}
}

func TestDecodeHandshakeRejects(t *testing.T) {
	good, _ := EncodeHandshake(validHello())
	v257, _ := msgpack.Marshal(&wireHandshake{Magic, 257, "c", 1, 1, ""})
	tests := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("GET / HTTP/1.1\r\n"),
		"not a map":      {0x93, 0x01, 0x02, 0x03},
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(append([]byte{}, good...), 0xc0),
		"version 257":    v257, // would truncate to 1 in a uint8
		"too long":       make([]byte, MaxHandshakeSize+1),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if h, err := DecodeHandshake(b); !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("DecodeHandshake = %+v, %v; want ErrBadHandshake", h, err)
			}
		})
	}
}

// The committed seeds of FuzzDecodeHandshake mean what their names say:
// valid_* decode, invalid_* do not.
func TestHandshakeSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeHandshake")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a one-value corpus file", e.Name())
		}
		in, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		_, err = DecodeHandshake([]byte(in))
		if valid := strings.HasPrefix(e.Name(), "valid"); valid != (err == nil) {
			t.Errorf("%s: DecodeHandshake error %v", e.Name(), err)
		}
	}
}
