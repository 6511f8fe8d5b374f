package proptest

import (
	"fmt"
	"strings"
)

// Faults is a set of fault kinds the simulator may inject.
type Faults uint16

// Fault kinds.
const (
	FaultCrash     Faults = 1 << iota // kill -9 a node; it restarts later as a new incarnation
	FaultPartition                    // cut links, symmetric or one-way; healed later
	FaultDrop                         // lose messages
	FaultDup                          // deliver some messages twice
	FaultReorder                      // widely varying delays
	FaultJoin                         // start with 3 members; the others join over time
	FaultLeave                        // members leave voluntarily (and rejoin later with FaultJoin)

	FaultNone Faults = 0
	FaultAll         = FaultCrash | FaultPartition | FaultDrop | FaultDup | FaultReorder | FaultJoin | FaultLeave
)

var faultNames = []struct {
	name string
	f    Faults
}{
	{"crash", FaultCrash}, {"partition", FaultPartition}, {"drop", FaultDrop}, {"dup", FaultDup},
	{"reorder", FaultReorder}, {"join", FaultJoin}, {"leave", FaultLeave},
}

// ParseFaults reads "none", "all" or a comma list such as "crash,drop".
func ParseFaults(s string) (Faults, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "none":
		return FaultNone, nil
	case "all":
		return FaultAll, nil
	}
	var f Faults
	for _, part := range strings.Split(s, ",") {
		found := false
		for _, n := range faultNames {
			if strings.TrimSpace(part) == n.name {
				f |= n.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("proptest: unknown fault %q (want none, all or a comma list of crash,partition,drop,dup,reorder,join,leave)", part)
		}
	}
	return f, nil
}

func (f Faults) String() string {
	if f == FaultNone {
		return "none"
	}
	if f == FaultAll {
		return "all"
	}
	var parts []string
	for _, n := range faultNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// Has reports whether every fault in o is in f.
func (f Faults) Has(o Faults) bool { return f&o == o }
