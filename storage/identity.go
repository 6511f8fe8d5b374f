package storage

import (
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
)

// Bucket and key names. See the package documentation for the layout.
var (
	bucketIdentity = []byte("identity")
	keyNode        = []byte("node")
	keyCluster     = []byte("cluster")
	keyInc         = []byte("incarnation")
)

// Identity is what a file records about its node: the node id and cluster
// name it was created for, and the incarnation of the latest Start.
type Identity struct {
	Node        uint64
	Cluster     string
	Incarnation uint64 // ≥ 1
}

func (id Identity) String() string {
	return fmt.Sprintf("node %d.%d of cluster %q", id.Node, id.Incarnation, id.Cluster)
}

// Identity returns the recorded identity. It reports false, with no error, if
// the file has never been started.
func (db *DB) Identity() (Identity, bool, error) {
	var (
		id Identity
		ok bool
	)
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		id, ok, err = db.readIdentity(tx)
		return err
	})
	if err != nil {
		return Identity{}, false, err
	}
	return id, ok, nil
}

// Start begins a new incarnation of node in cluster and returns it.
//
// On a file that was never started it records node, cluster and incarnation
// 1. On a file that was, it checks that node and cluster are the recorded
// ones (else ErrWrongNode or ErrWrongCluster, and the file is unchanged) and
// records the next incarnation. Either way the new incarnation is on disk
// before Start returns, so a process that restarts, even after being
// killed, always gets a higher one. Call Start once each time the node's
// process starts. node 0 and an empty cluster are ErrInvalid.
func (db *DB) Start(node uint64, cluster string) (Identity, error) {
	if node == 0 {
		return Identity{}, fmt.Errorf("%w: node id 0", ErrInvalid)
	}
	if cluster == "" {
		return Identity{}, fmt.Errorf("%w: empty cluster name", ErrInvalid)
	}
	var id Identity
	err := db.update(func(tx *bbolt.Tx) error {
		old, ok, err := db.readIdentity(tx)
		if err != nil {
			return err
		}
		if !ok {
			id = Identity{Node: node, Cluster: cluster, Incarnation: 1}
			return db.writeIdentity(tx, id)
		}
		if old.Node != node {
			return fmt.Errorf("%w: %s records node %d, not %d", ErrWrongNode, db.path, old.Node, node)
		}
		if old.Cluster != cluster {
			return fmt.Errorf("%w: %s records cluster %q, not %q", ErrWrongCluster, db.path, old.Cluster, cluster)
		}
		if old.Incarnation == math.MaxUint64 {
			return fmt.Errorf("%w: %s: incarnations exhausted", ErrCorrupt, db.path)
		}
		id = old
		id.Incarnation++
		return tx.Bucket(bucketIdentity).Put(keyInc, encodeUint(id.Incarnation))
	})
	if err != nil {
		return Identity{}, err
	}
	return id, nil
}

// readIdentity reads the identity bucket. A missing or empty bucket means a
// file never started; a partial or malformed one is ErrCorrupt.
func (db *DB) readIdentity(tx *bbolt.Tx) (Identity, bool, error) {
	id, ok, err := decodeIdentity(tx.Bucket(bucketIdentity))
	if err != nil {
		return Identity{}, false, db.corrupt("%v", err)
	}
	return id, ok, nil
}

// decodeIdentity decodes the identity bucket b, which may be nil.
func decodeIdentity(b *bbolt.Bucket) (Identity, bool, error) {
	if b == nil {
		return Identity{}, false, nil
	}
	rawNode, rawCluster, rawInc := b.Get(keyNode), b.Get(keyCluster), b.Get(keyInc)
	if rawNode == nil && rawCluster == nil && rawInc == nil {
		return Identity{}, false, nil
	}
	node, okNode := decodeUint(rawNode)
	inc, okInc := decodeUint(rawInc)
	if !okNode || !okInc || node == 0 || inc == 0 || len(rawCluster) == 0 {
		return Identity{}, false, errors.New("malformed identity")
	}
	return Identity{Node: node, Cluster: string(rawCluster), Incarnation: inc}, true, nil
}

// writeIdentity records id in full.
func (db *DB) writeIdentity(tx *bbolt.Tx, id Identity) error {
	b, err := tx.CreateBucketIfNotExists(bucketIdentity)
	if err != nil {
		return err
	}
	if err := b.Put(keyNode, encodeUint(id.Node)); err != nil {
		return err
	}
	if err := b.Put(keyCluster, []byte(id.Cluster)); err != nil {
		return err
	}
	return b.Put(keyInc, encodeUint(id.Incarnation))
}
