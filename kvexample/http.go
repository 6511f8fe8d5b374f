package kvexample

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is what GET /status returns: the cluster as one node sees it.
type Status struct {
	Cluster string       `json:"cluster"`
	Node    uint64       `json:"node"`
	Process string       `json:"process"`
	Nodes   []NodeStatus `json:"nodes"`
	Shards  ShardStatus  `json:"shards"`
	HWGs    []HWGStatus  `json:"hwgs"`
	// Switches are the switching actions this node's rebalancer last
	// started or noted; Rebalancer its counters.
	Switches   []string          `json:"switches_in_progress"`
	Rebalancer *RebalancerStatus `json:"rebalancer,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// NodeStatus is one configured node.
type NodeStatus struct {
	ID      uint64 `json:"id"`
	Cluster string `json:"cluster_addr,omitempty"`
	RESP    string `json:"resp_addr,omitempty"`
	HTTP    string `json:"http_addr,omitempty"`
	// Live: the node's process is in a view this node sees (of the
	// directory or a carrier), with its incarnation.
	Live    bool   `json:"live"`
	Process string `json:"process,omitempty"`
}

// RebalancerStatus counts what this node's switching.Rebalancer did.
type RebalancerStatus struct {
	Rounds    int  `json:"rounds"`
	Started   int  `json:"switches_started"`
	Completed int  `json:"switches_completed"`
	Failed    int  `json:"switches_failed"`
	InFlight  int  `json:"switches_in_flight"`
	Settled   bool `json:"settled"`
}

// ShardStatus counts shards.
type ShardStatus struct {
	Total    int `json:"total"`
	Replicas int `json:"replicas"`
	Local    int `json:"local"`
	Ready    int `json:"ready"`
}

// HWGStatus is one HWG carrying this node's LWGs.
type HWGStatus struct {
	ID      string   `json:"id"`
	ViewID  uint64   `json:"view_id"`
	Members []string `json:"members"`
	// LWGs is the number of this node's LWGs the HWG carries.
	LWGs int `json:"lwgs"`
}

// HTTPConfig configures an HTTPServer.
type HTTPConfig struct {
	Store *Store
	// Status builds the /status answer.
	Status func(ctx context.Context) (Status, error)
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Timeout bounds one request. Default 5s.
	Timeout time.Duration
	Logger  hclog.Logger
}

// HTTPServer serves GET /status (JSON), GET /metrics (Prometheus text
// format), and GET, PUT and DELETE /kv/{key} (the value is the raw body).
type HTTPServer struct {
	cfg  HTTPConfig
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// NewHTTPServer returns a server; Listen starts it.
func NewHTTPServer(cfg HTTPConfig) (*HTTPServer, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: HTTPConfig.Store is required", ErrInvalidConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	s := &HTTPServer{cfg: cfg}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Handler returns the server's routes.
func (s *HTTPServer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "lwgkv: GET /status, GET /metrics, GET|PUT|DELETE /kv/{key}\n")
	})
	mux.HandleFunc("GET /status", s.status)
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /kv/{key}", s.get)
	mux.HandleFunc("PUT /kv/{key}", s.put)
	mux.HandleFunc("DELETE /kv/{key}", s.del)
	return mux
}

// Listen listens on addr and serves in the background until Close.
func (s *HTTPServer) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kvexample: http listen: %w", err)
	}
	s.addr = ln.Addr()
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Warn("http server stopped", "error", err)
		}
	}()
	return nil
}

// Addr returns the listening address, nil before Listen.
func (s *HTTPServer) Addr() net.Addr { return s.addr }

// Close stops the server, waiting up to a second for requests to end.
func (s *HTTPServer) Close() error {
	if s.done == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

func (s *HTTPServer) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.Timeout)
}

func (s *HTTPServer) status(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Status == nil {
		http.Error(w, "no status", http.StatusNotFound)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.cfg.Status(ctx)
	if err != nil {
		httpError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}

func (s *HTTPServer) get(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, ok, err := s.cfg.Store.Get(ctx, []byte(r.PathValue("key")))
	if err != nil {
		httpError(w, err)
		return
	}
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.Write(v)
}

func (s *HTTPServer) put(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	max := s.cfg.Store.MaxValueBytes()
	v, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(v) > max {
		http.Error(w, fmt.Sprintf("value too large: the limit is %d bytes", max), http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := s.cfg.Store.Set(ctx, []byte(r.PathValue("key")), v, 0); err != nil {
		httpError(w, err)
		return
	}
	io.WriteString(w, "OK\n")
}

func (s *HTTPServer) del(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	n, err := s.cfg.Store.Del(ctx, []byte(r.PathValue("key")))
	if err != nil {
		httpError(w, err)
		return
	}
	fmt.Fprintf(w, "%d\n", n)
}

func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrValueTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotInteger), errors.Is(err, ErrOverflow), errors.Is(err, ErrMalformed):
		code = http.StatusBadRequest
	case errors.Is(err, rsm.ErrUnknown):
		code = http.StatusGatewayTimeout
	case errors.Is(err, rsm.ErrNotApplied), errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotHere),
		errors.Is(err, rsm.ErrClosed), errors.Is(err, ErrClosed), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, respError(err), code)
}
