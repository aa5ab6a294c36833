package collect

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/pipeline"
)

// browserCounters are the /e counters of the hot path, looked up in their
// vectors once (per process, or per site for the by-site ones) instead of
// hashing the label values on every request. Each is looked up where it was
// first counted before, so a series still appears in /metrics only once
// something is counted in it.
type browserCounters struct {
	m        *metrics.Metrics
	received func() prometheus.Counter // source="browser"
	sites    sync.Map                  // site key → *siteCounters
}

type siteCounters struct {
	accepted, duplicates, rejected prometheus.Counter
}

func newBrowserCounters(m *metrics.Metrics) *browserCounters {
	return &browserCounters{m: m, received: sync.OnceValue(func() prometheus.Counter {
		return m.Received.WithLabelValues(pipeline.SourceBrowser)
	})}
}

// site returns the counters of a site. There are as many as the vectors
// hold anyway: one per site that stored events.
func (c *browserCounters) site(key string) *siteCounters {
	if s, ok := c.sites.Load(key); ok {
		return s.(*siteCounters)
	}
	s := &siteCounters{accepted: c.m.Accepted.WithLabelValues(key),
		duplicates: c.m.Duplicates.WithLabelValues(key), rejected: c.m.Rejected.WithLabelValues(key)}
	actual, _ := c.sites.LoadOrStore(key, s)
	return actual.(*siteCounters)
}
