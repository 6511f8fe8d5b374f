package kvexample

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lwgkit/lwgkit/rsm"
	"github.com/tidwall/redcon"
)

// ForwardCommand is the internal RESP command a node sends a replica node
// to run a shard command there: LWGKV.SHARD <shard> <r|w> <encoded
// command>. The reply is the encoded Result as a bulk string. It is not
// meant for clients.
const ForwardCommand = "lwgkv.shard"

// RESP error prefixes beyond Redis's ERR. A client may retry a TRYAGAIN
// command; an UNKNOWN write may or may not have been applied.
const (
	prefixTryAgain = "TRYAGAIN"
	prefixUnknown  = "UNKNOWN"
	prefixNotHere  = "NOTHERE"
)

// RESPConfig configures a RESPServer.
type RESPConfig struct {
	// Store serves the commands.
	Store *Store
	// Timeout bounds one command. Default 5s.
	Timeout time.Duration
	// Info returns extra "field:value" lines for INFO's lwgkit section.
	Info func() []string
	// Logger. Default silent.
	Logger hclog.Logger
}

// RESPServer speaks a subset of the Redis protocol (RESP2) over a Store:
// GET SET DEL EXISTS INCR INCRBY DECR DECRBY MGET PING ECHO INFO, stubs of
// COMMAND, CONFIG GET, CLIENT and SELECT for the benefit of redis-cli,
// redis-benchmark and client libraries, and the internal LWGKV.SHARD.
// Replies and errors follow Redis's (wrong arity, unknown command, not an
// integer); malformed RESP gets "ERR Protocol error" and the connection
// is closed.
type RESPServer struct {
	cfg RESPConfig
	srv *redcon.Server
	log hclog.Logger

	mu   sync.Mutex
	ln   net.Listener
	addr net.Addr
	done chan struct{}
}

// NewRESPServer returns a server; Listen starts it.
func NewRESPServer(cfg RESPConfig) (*RESPServer, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: RESPConfig.Store is required", ErrInvalidConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &RESPServer{cfg: cfg, log: cfg.Logger}, nil
}

// Listen listens on addr and serves in the background until Close.
func (s *RESPServer) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kvexample: resp listen: %w", err)
	}
	s.srv = redcon.NewServer(addr, s.handle, nil, nil)
	s.mu.Lock()
	s.ln = ln
	s.addr = ln.Addr()
	s.done = make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil {
			s.log.Warn("resp server stopped", "error", err)
		}
	}()
	return nil
}

// Addr returns the listening address, nil before Listen.
func (s *RESPServer) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops listening and closes every connection.
func (s *RESPServer) Close() error {
	if s.srv == nil {
		return nil
	}
	s.srv.Close() // may not have seen the listener yet: close it too
	err := s.ln.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Handle serves one command; exported for tests and embedding in another
// redcon server.
func (s *RESPServer) Handle(conn redcon.Conn, cmd redcon.Command) { s.handle(conn, cmd) }

func (s *RESPServer) handle(conn redcon.Conn, cmd redcon.Command) {
	if len(cmd.Args) == 0 {
		return
	}
	name := strings.ToLower(string(cmd.Args[0]))
	args := cmd.Args[1:]
	arityOK := func(min, max int) bool {
		if len(args) < min || (max >= 0 && len(args) > max) {
			conn.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
			return false
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	st := s.cfg.Store
	switch name {
	case "ping":
		if !arityOK(0, 1) {
			return
		}
		if len(args) == 1 {
			conn.WriteBulk(args[0])
		} else {
			conn.WriteString("PONG")
		}
	case "echo":
		if arityOK(1, 1) {
			conn.WriteBulk(args[0])
		}
	case "get":
		if !arityOK(1, 1) {
			return
		}
		v, ok, err := st.Get(ctx, args[0])
		switch {
		case err != nil:
			writeErr(conn, err)
		case !ok:
			conn.WriteNull()
		default:
			conn.WriteBulk(v)
		}
	case "set":
		if !arityOK(2, -1) {
			return
		}
		var flags uint8
		for _, o := range args[2:] {
			switch strings.ToUpper(string(o)) {
			case "NX":
				flags |= SetNX
			case "XX":
				flags |= SetXX
			case "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "GET":
				conn.WriteError(fmt.Sprintf("ERR SET option %s is not supported by lwgkv", strings.ToUpper(string(o))))
				return
			default:
				conn.WriteError("ERR syntax error")
				return
			}
		}
		if flags == SetNX|SetXX {
			conn.WriteError("ERR syntax error")
			return
		}
		done, err := st.Set(ctx, args[0], args[1], flags)
		switch {
		case err != nil:
			writeErr(conn, err)
		case done:
			conn.WriteString("OK")
		default:
			conn.WriteNull()
		}
	case "del", "unlink", "exists":
		if !arityOK(1, -1) {
			return
		}
		f := st.Del
		if name == "exists" {
			f = st.Exists
		}
		n, err := f(ctx, args...)
		if err != nil {
			writeErr(conn, err)
			return
		}
		conn.WriteInt64(n)
	case "incr", "decr", "incrby", "decrby":
		var delta int64 = 1
		if strings.HasSuffix(name, "by") {
			if !arityOK(2, 2) {
				return
			}
			d, ok := parseInt(args[1])
			if !ok {
				conn.WriteError("ERR value is not an integer or out of range")
				return
			}
			delta = d
		} else if !arityOK(1, 1) {
			return
		}
		if strings.HasPrefix(name, "decr") {
			if delta == -delta && delta != 0 { // MinInt64
				conn.WriteError("ERR decrement would overflow")
				return
			}
			delta = -delta
		}
		n, err := st.IncrBy(ctx, args[0], delta)
		if err != nil {
			writeErr(conn, err)
			return
		}
		conn.WriteInt64(n)
	case "mget":
		if !arityOK(1, -1) {
			return
		}
		vs, err := st.MGet(ctx, args...)
		if err != nil {
			writeErr(conn, err)
			return
		}
		conn.WriteArray(len(vs))
		for _, v := range vs {
			if v == nil {
				conn.WriteNull()
			} else {
				conn.WriteBulk(v)
			}
		}
	case "info":
		conn.WriteBulkString(s.info())
	case "command":
		// redis-cli asks for COMMAND DOCS to show hints; no docs here.
		if len(args) > 0 && strings.EqualFold(string(args[0]), "count") {
			conn.WriteInt(len(supported))
			return
		}
		conn.WriteArray(0)
	case "config":
		if !arityOK(1, -1) {
			return
		}
		if !strings.EqualFold(string(args[0]), "get") || len(args) < 2 {
			conn.WriteError("ERR CONFIG " + strings.ToUpper(string(args[0])) + " is not supported by lwgkv")
			return
		}
		var kv []string
		for _, p := range args[1:] {
			for _, c := range configValues(st) {
				if ok, _ := matchGlob(strings.ToLower(string(p)), c[0]); ok {
					kv = append(kv, c[0], c[1])
				}
			}
		}
		conn.WriteArray(len(kv))
		for _, v := range kv {
			conn.WriteBulkString(v)
		}
	case "client":
		conn.WriteString("OK")
	case "select":
		if !arityOK(1, 1) {
			return
		}
		if string(args[0]) != "0" {
			conn.WriteError("ERR DB index is out of range")
			return
		}
		conn.WriteString("OK")
	case "quit":
		conn.WriteString("OK")
		conn.Close()
	case ForwardCommand:
		if !arityOK(3, 3) {
			return
		}
		shard, err := strconv.Atoi(string(args[0]))
		read := string(args[1]) == "r"
		if err != nil || (!read && string(args[1]) != "w") {
			conn.WriteError("ERR syntax error")
			return
		}
		raw, err := st.ExecLocal(ctx, shard, args[2], read)
		if err != nil {
			writeErr(conn, err)
			return
		}
		conn.WriteBulk(raw)
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "ERR unknown command '%.128s', with args beginning with: ", cmd.Args[0])
		for _, a := range args {
			fmt.Fprintf(&b, "'%.128s' ", a)
		}
		conn.WriteError(b.String())
	}
}

var supported = []string{"get", "set", "del", "unlink", "exists", "incr", "incrby", "decr", "decrby",
	"mget", "ping", "echo", "info", "command", "config", "client", "select", "quit"}

func configValues(st *Store) [][2]string {
	return [][2]string{
		{"save", ""},
		{"appendonly", "no"},
		{"proto-max-bulk-len", strconv.Itoa(st.MaxValueBytes())},
		{"databases", "1"},
	}
}

// matchGlob matches Redis-style glob patterns of CONFIG GET.
func matchGlob(pattern, s string) (bool, error) {
	if pattern == "*" {
		return true, nil
	}
	if !strings.ContainsAny(pattern, "*?[") {
		return pattern == s, nil
	}
	return pathMatch(pattern, s), nil
}

func pathMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if pathMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}

func (s *RESPServer) info() string {
	var b strings.Builder
	b.WriteString("# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nlwgkv:1\r\n")
	b.WriteString("# Cluster\r\ncluster_enabled:0\r\n")
	b.WriteString("# lwgkit\r\n")
	p := s.cfg.Store.Placement()
	fmt.Fprintf(&b, "node_id:%d\r\nshards:%d\r\nreplicas:%d\r\nnodes:%d\r\nmax_value_bytes:%d\r\n",
		s.cfg.Store.cfg.Self, p.Shards, p.Replicas, len(p.Nodes), s.cfg.Store.MaxValueBytes())
	if s.cfg.Info != nil {
		for _, l := range s.cfg.Info() {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// writeErr writes err as a Redis error reply.
func writeErr(conn redcon.Conn, err error) {
	conn.WriteError(respError(err))
}

func respError(err error) string {
	msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "\r", " "), "\n", " ")
	switch {
	case errors.Is(err, ErrNotInteger), errors.Is(err, ErrOverflow):
		return "ERR " + err.Error()
	case errors.Is(err, ErrValueTooLarge):
		return "ERR " + msg
	case errors.Is(err, ErrNotHere):
		return prefixNotHere + " " + msg
	case errors.Is(err, rsm.ErrUnknown):
		return prefixUnknown + " " + msg
	case errors.Is(err, rsm.ErrNotApplied), errors.Is(err, ErrUnavailable), errors.Is(err, rsm.ErrClosed),
		errors.Is(err, rsm.ErrNotOpen), errors.Is(err, rsm.ErrNotReady), errors.Is(err, ErrClosed):
		return prefixTryAgain + " " + msg
	}
	return "ERR " + msg
}

// errorFromRESP maps a RESP error reply of a forwarded command back to the
// sentinel errors of this package and rsm.
func errorFromRESP(msg string) error {
	kind, _, _ := strings.Cut(msg, " ")
	switch kind {
	case prefixNotHere:
		return fmt.Errorf("%w: %s", ErrNotHere, msg)
	case prefixTryAgain:
		return fmt.Errorf("%w: %s", rsm.ErrNotApplied, msg)
	case prefixUnknown:
		return fmt.Errorf("%w: %s", rsm.ErrUnknown, msg)
	}
	return errors.New(msg)
}
