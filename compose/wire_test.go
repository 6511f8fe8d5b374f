package compose

import (
	"runtime"
	"testing"
)

// Payloads of a few bytes declaring 2^24 elements made msgpack allocate
// hundreds of megabytes before finding them short; every decoder of a
// delivered payload checks the declared lengths first (internal/wirecheck).
func TestDecodersRefuseHostileLengths(t *testing.T) {
	array := func(key byte) []byte { return []byte{0x81, 0xa1, key, 0xdd, 0x01, 0x00, 0x00, 0x00} }
	route := append(append([]byte{}, magic...), 0x81, 0xa1, 'r', 0x81, 0xa1, 'd', 0xdd, 0x01, 0x00, 0x00, 0x00)
	for name, run := range map[string]func() error{
		"envelope": func() error { _, _, err := decode(route); return err },
		"call":     func() error { _, err := decodeCall(array('c')); return err },
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := run()
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: refusing it allocated %d bytes", name, n)
		}
	}
}
