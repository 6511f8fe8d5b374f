package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunOneSeedWritesTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	var out, errOut bytes.Buffer
	code := run([]string{"-seed", "7", "-nodes", "5", "-steps", "3000", "-faults", "all", "-trace", path}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"seed 7:", "views installed", "faults", "verdict: ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	first, err := os.ReadFile(path)
	if err != nil || len(first) == 0 {
		t.Fatalf("trace not written: %v", err)
	}
	// The same flags give a byte-identical trace.
	if code := run([]string{"-seed", "7", "-nodes", "5", "-steps", "3000", "-faults", "all", "-trace", path}, &out, &errOut); code != 0 {
		t.Fatalf("second run exit %d", code)
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Fatal("the same seed wrote a different trace")
	}
}

func TestRunSeedRange(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-seeds", "1-20", "-nodes", "5", "-steps", "2000", "-q"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "20 runs, 0 with violations") {
		t.Fatalf("unexpected total:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-faults", "meteor"},
		{"-seeds", "9-3"},
		{"-seeds", "x"},
		{"-nodes", "0"},
		{"-seeds", "1-2", "-trace", "t.jsonl"},
		{"-no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}

func TestRunLWGs(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-seeds", "1-3", "-lwgs", "50", "-switches", "5", "-q"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "3 runs, 0 with violations") {
		t.Fatalf("unexpected total:\n%s", out.String())
	}
	// One LWG run, traced twice: byte-identical, and it holds LWG installs
	// that name their carrier.
	path := filepath.Join(t.TempDir(), "lwg.jsonl")
	args := []string{"-seed", "3", "-lwgs", "20", "-switches", "5", "-trace", path}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	first, _ := os.ReadFile(path)
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("second run exit %d", code)
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Fatal("the same seed wrote a different LWG trace")
	}
	if !bytes.Contains(first, []byte(`"group":"l/0"`)) || !bytes.Contains(first, []byte(`"hwg":"h/c`)) {
		t.Fatal("the trace holds no LWG install naming a carrier")
	}
}

func TestBadLWGFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-lwgs", "-1"},
		{"-lwgs", "5", "-lwg-size", "0"},
		{"-lwgs", "5", "-switches", "-2"},
		{"-lwgs", "5", "-carriers", "-1"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestRunLWGsAsync(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-seeds", "1-3", "-lwgs", "50", "-switches", "5", "-async", "-q"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "3 runs, 0 with violations") {
		t.Fatalf("unexpected total:\n%s", out.String())
	}
	// The trace holds the copies of carrier events the LWG layer took late.
	path := filepath.Join(t.TempDir(), "async.jsonl")
	out.Reset()
	if code := run([]string{"-seed", "3", "-lwgs", "20", "-switches", "5", "-async", "-trace", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"seen":true`)) {
		t.Error("an -async trace holds no seen copies of carrier events")
	}
}
