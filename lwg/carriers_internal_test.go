package lwg

import (
	"slices"
	"testing"

	"github.com/lwgkit/lwgkit/hwg"
)

// TestSortedCarriersCache: the ordered carrier list is reused until a
// carrier is added, then rebuilt in order, and a list a caller holds is
// not changed under it.
func TestSortedCarriersCache(t *testing.T) {
	c, err := NewCore(Config{Self: hwg.Process{Node: 1, Inc: 1}})
	if err != nil {
		t.Fatal(err)
	}
	groups := func(cs []*carrier) []hwg.GroupID {
		var gs []hwg.GroupID
		for _, car := range cs {
			gs = append(gs, car.group)
		}
		return gs
	}
	c.carrierOf("h/b")
	c.carrierOf("h/a")
	first := c.sortedCarriers()
	if got, want := groups(first), []hwg.GroupID{"h/a", "h/b"}; !slices.Equal(got, want) {
		t.Fatalf("carriers %v, want %v", got, want)
	}
	if again := c.sortedCarriers(); &again[0] != &first[0] {
		t.Fatal("the list was rebuilt with no carrier added")
	}
	c.carrierOf("h/a") // there already: no change
	if again := c.sortedCarriers(); &again[0] != &first[0] {
		t.Fatal("the list was rebuilt for a carrier already there")
	}
	c.carrierOf("h/0")
	if got, want := groups(c.sortedCarriers()), []hwg.GroupID{"h/0", "h/a", "h/b"}; !slices.Equal(got, want) {
		t.Fatalf("carriers %v, want %v", got, want)
	}
	if got, want := groups(first), []hwg.GroupID{"h/a", "h/b"}; !slices.Equal(got, want) {
		t.Fatalf("a list held across an addition became %v, want %v", got, want)
	}
	for _, car := range c.sortedCarriers() {
		if c.carriers[car.group] != car {
			t.Fatalf("listed carrier %s is not the Core's", car.group)
		}
	}
}
