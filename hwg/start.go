package hwg

import (
	"fmt"
	"io"

	"github.com/lwgkit/lwgkit/hwg/transport"
	"github.com/lwgkit/lwgkit/storage"
)

// StartConfig describes a node that runs over TCP with its identity on disk.
type StartConfig struct {
	// Node is this node's stable id; Cluster the cluster's name. Both are
	// checked against DataFile, so a node cannot start on someone else's
	// data, or join another cluster, by mistake.
	Node    NodeID
	Cluster string
	// DataFile is the node's bbolt file. Every start takes a new
	// incarnation from it.
	DataFile string
	// DB, if set, is the node's storage file already open (DataFile is
	// then ignored): layers above keep their state in the same file. The
	// caller closes it after Node.Close.
	DB *storage.DB
	// Listen is the TCP address to listen on; Advertise the one peers dial
	// (default: the listen address). Seeds are addresses dialed at start;
	// Peers are known addresses by node id.
	Listen, Advertise string
	Seeds             []string
	Peers             map[NodeID]string
	// Config is the runtime's configuration (timing, logger); Self and
	// Transport are filled in, and its Logger is shared with the transport.
	Config NodeConfig
}

// Start opens the node's data file (taking a new incarnation), starts a
// TCP transport and the node. Node.Close closes all three.
func Start(cfg StartConfig) (*Node, error) {
	db := cfg.DB
	var owned []io.Closer
	if db == nil {
		var err error
		if db, err = storage.Open(cfg.DataFile, storage.Options{}); err != nil {
			return nil, fmt.Errorf("hwg: opening %s: %w", cfg.DataFile, err)
		}
		owned = append(owned, db)
	}
	closeOwned := func() {
		for _, c := range owned {
			c.Close()
		}
	}
	id, err := db.Start(uint64(cfg.Node), cfg.Cluster)
	if err != nil {
		closeOwned()
		return nil, fmt.Errorf("hwg: starting node %d: %w", cfg.Node, err)
	}
	self := Process{Node: cfg.Node, Inc: id.Incarnation}
	tr, err := transport.NewTCP(transport.TCPConfig{
		Cluster:   cfg.Cluster,
		Self:      transport.Peer{Node: uint64(self.Node), Inc: self.Inc},
		Listen:    cfg.Listen,
		Advertise: cfg.Advertise,
		Seeds:     cfg.Seeds,
		Logger:    cfg.Config.Logger,
	})
	if err != nil {
		closeOwned()
		return nil, fmt.Errorf("hwg: %w", err)
	}
	for n, addr := range cfg.Peers {
		tr.AddPeer(uint64(n), addr)
	}
	nc := cfg.Config
	nc.Self, nc.Transport = self, tr
	n, err := NewNode(nc)
	if err != nil {
		tr.Close()
		closeOwned()
		return nil, err
	}
	n.owned = append([]io.Closer{tr}, owned...)
	return n, nil
}

// Addr returns the address the node's TCP transport listens on, if it was
// started with Start.
func (n *Node) Addr() string {
	if tr, ok := n.tr.(*transport.TCP); ok {
		return tr.Addr()
	}
	return ""
}
