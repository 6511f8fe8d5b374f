package switching

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
)

// Layer is what the Rebalancer needs of a node's LWG layer; *lwg.Service
// implements it.
type Layer interface {
	// Observe returns what the node knows about placement.
	Observe(ctx context.Context) (lwg.Observation, error)
	// Switch moves l to the carrier of base and returns once l installed a
	// view there.
	Switch(ctx context.Context, l lwg.ID, base hwg.GroupID) error
}

// RebalancerConfig configures a Rebalancer. Zero fields take the defaults
// shown.
type RebalancerConfig struct {
	// Layer is the node's LWG layer. Required.
	Layer Layer
	// Policy decides. Default: NewDefault(Config{}).
	Policy Policy
	// Interval is the length of a round: the policy's rates are per
	// Interval and its windows count Intervals. Default 1s.
	Interval time.Duration
	// MaxInFlight bounds the switches this node has in progress at once.
	// Default 256.
	MaxInFlight int
	// SwitchTimeout bounds the wait for one switch; a switch that has not
	// completed by then is reported failed (the LWG layer may still
	// complete or abort it; the next rounds see where the LWG is).
	// Default 30s.
	SwitchTimeout time.Duration
	// RateSmoothing: see PlannerConfig.
	RateSmoothing float64
	// OnRound, if set, is called after every round with its report, on
	// the goroutine that runs the round. It must not block.
	OnRound func(RoundReport)
	// Logger receives the Rebalancer's logs. Default: silent.
	Logger hclog.Logger
}

// RoundReport is what one round of a Rebalancer saw and did.
type RoundReport struct {
	Round int
	// LWGs this node observed, Decided of them it decides for, and Exact
	// of them on an HWG whose members equal their own.
	LWGs, Decided, Exact int
	// Settled: every observed LWG is on an HWG of exactly its members and
	// none is busy.
	Settled bool
	// Actions the policy returned (switches of this node's LWGs, and
	// creates, merges and retirements it noted).
	Actions []Action
	// Started is the number of switches started this round; InFlight the
	// number in progress after it.
	Started, InFlight int
	// Interference is the node's interference counter (data messages its
	// carriers delivered for LWGs it is not in), since it started.
	Interference uint64
}

// RebalancerStats are a Rebalancer's counters since it started.
type RebalancerStats struct {
	Rounds                     int
	Started, Completed, Failed int
	InFlight                   int
	Last                       RoundReport
}

// Rebalancer is the runtime part of switching on one node: every Interval
// it observes the node's LWG layer, asks the policy through a Planner, and
// carries out the switches of the LWGs this node coordinates through
// Layer.Switch, at most MaxInFlight at a time. Every node of a cluster
// runs one; each decides only for the LWGs whose view it heads, so no two
// nodes switch one LWG (and the LWG layer orders a switch in the LWG's
// view, so even a stale coordinator's switch cannot conflict with
// another).
//
// Run owns the Planner; switches run on goroutines of their own. Stats is
// safe for concurrent use.
type Rebalancer struct {
	cfg     RebalancerConfig
	log     hclog.Logger
	planner *Planner

	mu       sync.Mutex
	inflight map[lwg.ID]bool
	stats    RebalancerStats
	wg       sync.WaitGroup
}

// ErrNoLayer is returned by NewRebalancer without a Layer.
var ErrNoLayer = errors.New("switching: no Layer")

// NewRebalancer returns a Rebalancer; Run starts it.
func NewRebalancer(cfg RebalancerConfig) (*Rebalancer, error) {
	if cfg.Layer == nil {
		return nil, ErrNoLayer
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.SwitchTimeout <= 0 {
		cfg.SwitchTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Rebalancer{
		cfg:      cfg,
		log:      cfg.Logger,
		planner:  NewPlanner(PlannerConfig{Policy: cfg.Policy, RateSmoothing: cfg.RateSmoothing}),
		inflight: map[lwg.ID]bool{},
	}, nil
}

// Run runs a round every Interval until ctx ends, then waits for the
// switches in progress to return (they end with ctx) and returns ctx's
// error. A round whose observation fails is skipped and logged.
func (r *Rebalancer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	defer r.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("rebalancing round skipped", "error", err)
		}
	}
}

// Round runs one round now: observe, plan, start the switches. Run calls
// it every Interval; a caller that drives rounds itself calls it instead
// of Run, never concurrently with Run or itself.
func (r *Rebalancer) Round(ctx context.Context) (RoundReport, error) {
	o, err := r.cfg.Layer.Observe(ctx)
	if err != nil {
		return RoundReport{}, fmt.Errorf("switching: observing: %w", err)
	}
	r.mu.Lock()
	busy := func(l lwg.ID) bool { return r.inflight[l] }
	snap, acts := r.planner.Plan(o, busy)
	rep := RoundReport{Round: r.planner.Round(), LWGs: len(snap.LWGs), Actions: acts, Settled: Settled(&snap), Interference: o.Stats.Interference}
	hs := map[hwg.GroupID]nodeSet{}
	for _, h := range snap.HWGs {
		hs[h.ID] = asSet(h.Members)
	}
	for _, l := range snap.LWGs {
		if l.Decide {
			rep.Decided++
		}
		if h, ok := hs[l.HWG]; ok && h.equal(asSet(l.Members)) {
			rep.Exact++
		}
	}
	for _, a := range acts {
		if a.Kind != ActSwitch || r.inflight[a.LWG] || len(r.inflight) >= r.cfg.MaxInFlight {
			continue
		}
		r.inflight[a.LWG] = true
		r.stats.Started++
		rep.Started++
		r.wg.Add(1)
		go r.switchOne(ctx, a)
	}
	rep.InFlight = len(r.inflight)
	r.stats.Rounds = rep.Round
	r.stats.InFlight = rep.InFlight
	r.stats.Last = rep
	r.mu.Unlock()
	if rep.Started > 0 {
		r.log.Debug("rebalancing", "round", rep.Round, "switches", rep.Started, "in_flight", rep.InFlight)
	}
	if r.cfg.OnRound != nil {
		r.cfg.OnRound(rep)
	}
	return rep, nil
}

func (r *Rebalancer) switchOne(ctx context.Context, a Action) {
	defer r.wg.Done()
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SwitchTimeout)
	err := r.cfg.Layer.Switch(sctx, a.LWG, a.Base)
	cancel()
	r.mu.Lock()
	delete(r.inflight, a.LWG)
	if err != nil {
		r.stats.Failed++
	} else {
		r.stats.Completed++
	}
	r.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		r.log.Info("switch did not complete", "lwg", a.LWG, "to", a.Base, "error", err)
	}
}

// Stats returns the Rebalancer's counters.
func (r *Rebalancer) Stats() RebalancerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.InFlight = len(r.inflight)
	return st
}
