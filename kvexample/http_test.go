package kvexample

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHTTP(t *testing.T) {
	c := newFakeCluster(t, 3, 16, 2)
	st := c.stores[1]
	reg := prometheus.NewRegistry()
	reg.MustRegister(st.Collectors()...)
	srv, err := NewHTTPServer(HTTPConfig{
		Store:    st,
		Gatherer: reg,
		Status: func(context.Context) (Status, error) {
			return Status{Cluster: "c", Node: 1, HWGs: []HWGStatus{{ID: "h/m/1.2", LWGs: 16}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("GET", "/kv/a", ""); code != 404 {
		t.Fatalf("missing key: %d", code)
	}
	if code, _ := do("PUT", "/kv/a", "hello world"); code != 200 {
		t.Fatalf("put: %d", code)
	}
	if code, body := do("GET", "/kv/a", ""); code != 200 || body != "hello world" {
		t.Fatalf("get: %d %q", code, body)
	}
	if code, body := do("PUT", "/kv/big", strings.Repeat("x", 1001)); code != 413 || !strings.Contains(body, "limit is 1000") {
		t.Fatalf("oversized put: %d %q", code, body)
	}
	if code, _ := do("GET", "/kv/big", ""); code != 404 {
		t.Fatalf("an oversized put stored something: %d", code)
	}
	if code, body := do("DELETE", "/kv/a", ""); code != 200 || body != "1\n" {
		t.Fatalf("delete: %d %q", code, body)
	}
	code, body := do("GET", "/status", "")
	var s Status
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.HWGs[0].LWGs != 16 {
		t.Fatalf("status: %d %q", code, body)
	}
	if code, body := do("GET", "/metrics", ""); code != 200 || !strings.Contains(body, `kv_shard_commands_total{node="1",op="set",outcome="ok"} 1`) {
		t.Fatalf("metrics: %d %.600s", code, body)
	}
	if code, _ := do("POST", "/kv/a", "x"); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", code)
	}
}
