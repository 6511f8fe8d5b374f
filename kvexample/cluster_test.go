package kvexample

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddrs hands out distinct ports, free when it returns and below the
// kernel's ephemeral range where that can be read (two nodes of a test
// cluster were once given the same port).
func TestFreeAddrsDistinct(t *testing.T) {
	as, err := FreeAddrs(60)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := belowEphemeral()
	seen := map[string]bool{}
	for _, a := range as {
		if seen[a] {
			t.Fatalf("%s handed out twice in %v", a, as)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if hi > lo && (port < lo || port >= hi) {
			t.Fatalf("port %d outside [%d, %d), below the ephemeral ports", port, lo, hi)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		ln.Close()
	}
}
