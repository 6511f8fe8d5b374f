package rsmtest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// onlyReader hides a reader's WriteTo, so Restore copies through a buffer.
type onlyReader struct{ io.Reader }

// A padded Counter restores from its snapshot whether its reader hands
// over buffers (WriteTo) or not, and refuses a corrupt, short or long one.
func TestCounterPadding(t *testing.T) {
	for _, pad := range []int{0, 100, 256, 70_000, 200_001} {
		src := &Counter{Pad: pad}
		src.Apply(Add(7))
		var snap bytes.Buffer
		if err := src.Snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		for _, wrap := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			func(r io.Reader) io.Reader { return onlyReader{r} },
		} {
			dst := &Counter{}
			if err := dst.Restore(wrap(bytes.NewReader(snap.Bytes()))); err != nil {
				t.Fatalf("pad %d: %v", pad, err)
			}
			if total, digest := dst.Peek(); total != 7 || digest != src.digest || dst.Pad != pad {
				t.Fatalf("pad %d: restored total %d pad %d", pad, total, dst.Pad)
			}
		}
		if pad == 0 {
			continue
		}
		corrupt := bytes.Clone(snap.Bytes())
		at := 48 + pad*2/3
		corrupt[at]++
		if err := (&Counter{}).Restore(bytes.NewReader(corrupt)); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("pad %d: a corrupt byte at %d restored: %v", pad, at, err)
		}
		if err := (&Counter{}).Restore(bytes.NewReader(snap.Bytes()[:snap.Len()-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("pad %d: a short snapshot: %v, want ErrUnexpectedEOF", pad, err)
		}
		if err := (&Counter{}).Restore(bytes.NewReader(append(bytes.Clone(snap.Bytes()), 0))); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("pad %d: trailing bytes restored: %v", pad, err)
		}
	}
}
