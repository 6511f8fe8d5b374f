package lwg

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports a Service's counters as Prometheus metrics.
type collector struct {
	s                                         *Service
	interference, stale, malformed, delivered *prometheus.Desc
	endpoints, dropped, batched               *prometheus.Desc
}

// Collector returns a Prometheus collector of the Service's counters:
// lwg_interference_total (data messages a carrier brought to this node for
// LWGs it has no endpoint for: the cost of sharing carriers),
// lwg_delivered_total, lwg_stale_total, lwg_malformed_total,
// lwg_multicast_dropped_total (multicasts queued just as this node left
// or was excluded from their LWG, see Service.Multicast),
// lwg_batched_total (multicasts sent together with others of the same
// carrier in one HWG message) and the
// lwg_endpoints gauge. Register it with a prometheus.Registerer; each
// scrape asks the Service's loop, waiting at most a second.
func (s *Service) Collector() prometheus.Collector {
	self := prometheus.Labels{"node": s.node.Self().String()}
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, self) }
	return &collector{
		s:            s,
		interference: desc("lwg_interference_total", "Data messages delivered to this node for LWGs it has no endpoint for."),
		stale:        desc("lwg_stale_total", "Data messages dropped as from a non-member or of another view."),
		malformed:    desc("lwg_malformed_total", "Payloads from carriers that failed to decode."),
		delivered:    desc("lwg_delivered_total", "Data messages delivered to local LWG endpoints."),
		endpoints:    desc("lwg_endpoints", "Local LWG endpoints."),
		dropped:      desc("lwg_multicast_dropped_total", "Multicasts queued for an LWG this node left or was excluded from before they were sent."),
		batched:      desc("lwg_batched_total", "Multicasts sent together with others of the same carrier in one HWG message."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.interference, c.stale, c.malformed, c.delivered, c.endpoints, c.dropped, c.batched} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var st Stats
	var eps int
	err := c.s.do(ctx, func(done chan error) error {
		st, eps = c.s.core.Stats(), c.s.core.Endpoints()
		now(done)
		return nil
	})
	if err != nil {
		return // closed or stuck: no sample rather than a wrong one
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.interference, st.Interference)
	counter(c.stale, st.Stale)
	counter(c.malformed, st.Malformed)
	counter(c.delivered, st.Delivered)
	counter(c.dropped, c.s.dropped.Load())
	counter(c.batched, st.Batched)
	ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(eps))
}
