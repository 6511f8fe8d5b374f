package durstats

import (
	"strings"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	var d = map[string][]time.Duration{"a": {}, "b": {}}
	for i := 100; i >= 1; i-- {
		d["b"] = append(d["b"], time.Duration(i)*time.Millisecond)
	}
	var sb strings.Builder
	WriteTable(&sb, "stage", []string{"a", "b", "c"}, d)
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "stage") {
		t.Fatalf("table:\n%s", sb.String())
	}
	// 100 samples of 1..100 ms: p50 is the 51st, p90 the 91st, p99 the
	// 100th, the mean 50.5 ms; a name without samples has no row.
	if f := strings.Fields(lines[1]); len(f) != 6 || f[0] != "b" || f[1] != "100" || f[2] != "51ms" || f[3] != "91ms" || f[4] != "100ms" || f[5] != "50.5ms" {
		t.Fatalf("row %q", lines[1])
	}
}
