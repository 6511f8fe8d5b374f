package rsm

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports a Node's Stats as Prometheus metrics.
type collector struct {
	n     *Node
	descs []*prometheus.Desc
}

// metric names and help, in the order collect reads Stats.
var metricDefs = []struct{ name, help string }{
	{"rsm_objects", "Objects open on this node."},
	{"rsm_proposals_total", "Proposals sent from this node."},
	{"rsm_reads_total", "Linearizable reads sent from this node."},
	{"rsm_applied_total", "Commands applied on this node, all objects."},
	{"rsm_views_total", "Object views installed on this node."},
	{"rsm_snapshots_taken_total", "Snapshots written (local and for joiners)."},
	{"rsm_snapshots_sent_total", "Snapshot transfers served to their last byte."},
	{"rsm_snapshot_bytes_sent_total", "Bytes of snapshots streamed to joiners."},
	{"rsm_snapshots_received_total", "Snapshots restored from a donor."},
	{"rsm_snapshot_bytes_received_total", "Bytes of snapshots restored from donors."},
	{"rsm_malformed_total", "Ordered messages that failed to decode."},
}

// Collector returns a Prometheus collector of the Node's Stats (rsm_*
// metrics, labelled with the node). Register it with a
// prometheus.Registerer; scrapes read counters without blocking the Node.
func (n *Node) Collector() prometheus.Collector {
	self := prometheus.Labels{"node": n.self.String()}
	c := &collector{n: n}
	for _, d := range metricDefs {
		c.descs = append(c.descs, prometheus.NewDesc(d.name, d.help, nil, self))
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Stats()
	vals := []uint64{uint64(st.Objects), st.Proposals, st.Reads, st.Applied, st.Views, st.SnapshotsTaken,
		st.SnapshotsSent, st.SnapshotBytesSent, st.SnapshotsReceived, st.SnapshotBytesReceived, st.Malformed}
	for i, v := range vals {
		kind := prometheus.CounterValue
		if i == 0 {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], kind, float64(v))
	}
}
