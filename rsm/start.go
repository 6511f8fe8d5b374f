package rsm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/lwgkit/lwgkit/hwg"
	"github.com/lwgkit/lwgkit/lwg"
	"github.com/lwgkit/lwgkit/storage"
)

// StartConfig describes a whole node over TCP: its data file, HWG node,
// LWG service and object Node.
type StartConfig struct {
	// Node is this node's stable id and Cluster the cluster's name; both
	// are checked against the data file (storage.ErrWrongNode,
	// storage.ErrWrongCluster).
	Node    hwg.NodeID
	Cluster string
	// DataDir holds the node's file, node.db (created if missing).
	DataDir string
	// Listen is the TCP address of the cluster transport; Advertise the one
	// peers dial (default Listen). Seeds are dialed at start; Peers are
	// known addresses by node id.
	Listen, Advertise string
	Seeds             []string
	Peers             map[hwg.NodeID]string
	// Bootstrap creates the cluster's directory with this node alone: the
	// first node of a new cluster. Other nodes join it through Contacts.
	Bootstrap bool
	Contacts  []hwg.NodeID
	// Fast uses hwg.FastTiming: failure detection in about 200 ms on a
	// fast network, instead of about a second.
	Fast bool
	// Place chooses the HWG a new object's LWG is created on. Default
	// lwg.Shared("h/lwg").
	Place lwg.Placement
	// Config tunes the Node; Service and HWG are filled in.
	Config Config
	// Logger receives every layer's logs. Default: silent.
	Logger hclog.Logger
}

// Start opens the data file (taking a new incarnation), starts the TCP
// transport, the HWG node, the LWG service and the object Node, which
// keeps its snapshots in the data file. Node.Close stops all of them.
func Start(ctx context.Context, cfg StartConfig) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no DataDir", ErrInvalidConfig)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("rsm: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	path := filepath.Join(cfg.DataDir, "node.db")
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		return nil, fmt.Errorf("rsm: %w", err)
	}
	var owned []io.Closer
	fail := func(err error) (*Node, error) {
		for i := len(owned) - 1; i >= 0; i-- {
			owned[i].Close()
		}
		db.Close()
		return nil, err
	}
	nc := hwg.NodeConfig{Logger: log}
	if cfg.Fast {
		nc = hwg.FastTiming(nc)
	}
	nc.Group.ManualBlockOK = true // the LWG service answers carrier flushes
	nc.NoSendEvents = true        // the LWG service ignores them
	hn, err := hwg.Start(hwg.StartConfig{
		Node: cfg.Node, Cluster: cfg.Cluster, DB: db,
		Listen: cfg.Listen, Advertise: cfg.Advertise, Seeds: cfg.Seeds, Peers: cfg.Peers,
		Config: nc,
	})
	if err != nil {
		return fail(err)
	}
	owned = append(owned, hn)
	// The Node reads no EventSend: one per message sent, each a channel
	// hand-off to routeEvents, which dropped it.
	sc := lwg.ServiceConfig{Node: hn, Core: lwg.Config{Place: cfg.Place}, Contacts: cfg.Contacts, Logger: log, NoSendEvents: true, EventBatches: true}
	if cfg.Bootstrap {
		sc.DirectoryMembers = []hwg.Process{hn.Self()}
	}
	if cfg.Fast {
		sc.TickInterval = nc.TickInterval
	}
	svc, err := lwg.NewService(sc)
	if err != nil {
		return fail(err)
	}
	owned = append(owned, svc)
	rc := cfg.Config
	rc.Service, rc.HWG, rc.Logger = svc, hn, log
	store, err := newDBStore(db, filepath.Join(cfg.DataDir, "spool"), spoolBudget(rc.SpoolMemory), log)
	if err != nil {
		return fail(err)
	}
	owned = append(owned, store)
	rc.snaps = store
	// An object whose first snapshot was written before its record was
	// durable (Open records while it joins) and then crashed is not
	// reopened: drop its state, as if it had never opened. Best effort:
	// state nothing reads is no reason not to start.
	if k, err := db.DeleteUnrecorded(); err != nil {
		log.Warn("could not remove the state of objects not recorded before a crash", "error", err)
	} else if k > 0 {
		log.Info("removed the state of objects not recorded before a crash", "objects", k)
	}
	n, err := New(rc)
	if err != nil {
		return fail(err)
	}
	// Closed in order: the service, the HWG node, the spool, the file.
	n.owned = []io.Closer{svc, hn, store, db}
	return n, nil
}
