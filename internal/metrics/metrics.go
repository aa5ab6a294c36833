// Package metrics holds capirelay's Prometheus collectors. One *Metrics is
// built in wiring and passed to whoever counts; nothing is registered
// globally, so tests can build as many as they like.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters and histograms of one relay process.
type Metrics struct {
	Registry *prometheus.Registry

	Received     *prometheus.CounterVec // events received, by source
	Accepted     *prometheus.CounterVec // by site
	Duplicates   *prometheus.CounterVec // by site
	Rejected     *prometheus.CounterVec // by site
	Delivered    *prometheus.CounterVec // by site
	Retried      *prometheus.CounterVec // by site
	DeadLettered *prometheus.CounterVec // by site, reason class
	BotsDropped  prometheus.Counter
	RateLimited  *prometheus.CounterVec   // by endpoint
	QueueDepth   *prometheus.GaugeVec     // pending+inflight, by site
	SitePaused   *prometheus.GaugeVec     // 1 when paused, by site
	GraphLatency *prometheus.HistogramVec // Graph API request latency, by outcome
	HTTPRequests *prometheus.CounterVec   // by route, code
	// IngestLatency is the time an ingest request takes in the relay, from
	// its handler's start to its answer (after the durable commit), by
	// endpoint: "e", "events" or "graph".
	IngestLatency *prometheus.HistogramVec
	TokenInvalid  *prometheus.GaugeVec   // 1 when the token check failed, by site
	Webhooks      *prometheus.CounterVec // partial lead webhooks, by outcome
	PartialLeads  *prometheus.CounterVec // by site
	// PaymentDropped counts values that looked like card numbers, dropped
	// from browser captures and identify data before anything was stored.
	PaymentDropped prometheus.Counter
	// URLsScrubbed counts events (and partial leads' pages) whose page or
	// referrer URL held personal data or a secret, taken out before
	// anything was stored (event.ScrubURL).
	URLsScrubbed prometheus.Counter
	// CustomDataScrubbed counts events whose custom_data held personal
	// data or a card number, taken out before anything was stored.
	CustomDataScrubbed prometheus.Counter
	// UntrustedForwarded counts /e requests whose X-Forwarded-For came
	// from a peer not in CAPIRELAY_TRUSTED_PROXIES (and was ignored).
	UntrustedForwarded prometheus.Counter
}

// New builds and registers every collector, plus Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "capirelay", Name: name, Help: help}, labels)
		r.MustRegister(c)
		return c
	}
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		c := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "capirelay", Name: name, Help: help}, labels)
		r.MustRegister(c)
		return c
	}
	m := &Metrics{Registry: r}
	m.Received = f("events_received_total", "Events received, by source (server, browser, import, lead).", "source")
	m.Accepted = f("events_accepted_total", "Events stored for delivery.", "site")
	m.Duplicates = f("events_duplicate_total", "Events dropped as repeats of (event_name, event_id) within 48h.", "site")
	m.Rejected = f("events_rejected_total", "Events refused at ingest for breaking Meta's rules.", "site")
	m.Delivered = f("events_delivered_total", "Events Meta (or the sandbox) accepted.", "site")
	m.Retried = f("events_retried_total", "Event delivery attempts that will be retried.", "site")
	m.DeadLettered = f("events_dead_lettered_total", "Events given up on, by reason class.", "site", "reason")
	m.BotsDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "bot_events_dropped_total", Help: "Browser events from known bots, dropped."})
	r.MustRegister(m.BotsDropped)
	m.RateLimited = f("rate_limited_total", "Requests refused by a rate limit.", "endpoint")
	m.QueueDepth = g("queue_depth", "Events pending or in flight, by site.", "site")
	m.SitePaused = g("site_paused", "1 when delivery for the site is paused.", "site")
	m.TokenInvalid = g("token_invalid", "1 when the site's access token failed its last check.", "site")
	m.GraphLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "capirelay", Name: "graph_request_seconds",
		Help: "Graph API request latency.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}, []string{"outcome"})
	r.MustRegister(m.GraphLatency)
	m.IngestLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "capirelay", Name: "ingest_request_seconds",
		Help:    "Time an ingest request takes in the relay, up to its answer after the durable commit, by endpoint (e, events, graph).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"endpoint"})
	r.MustRegister(m.IngestLatency)
	m.HTTPRequests = f("http_requests_total", "HTTP requests, by route and status code.", "route", "code")
	m.Webhooks = f("webhook_deliveries_total", "Partial lead webhook deliveries, by outcome.", "outcome")
	m.PartialLeads = f("partial_leads_total", "Partial leads created.", "site")
	m.PaymentDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "payment_values_dropped_total",
		Help: "Browser values that looked like card numbers, dropped before anything was stored."})
	m.UntrustedForwarded = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "untrusted_forwarded_for_total",
		Help: "Browser requests with X-Forwarded-For from a peer outside CAPIRELAY_TRUSTED_PROXIES (the header was ignored)."})
	m.URLsScrubbed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "urls_scrubbed_total",
		Help: "Events and partial leads whose page or referrer URL held personal data or a secret (a form sent with GET, say), removed before anything was stored."})
	m.CustomDataScrubbed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "custom_data_scrubbed_total",
		Help: "Events whose custom_data held personal data or a card number (a member named for it, an email address, an international phone number), removed before anything was stored."})
	r.MustRegister(m.PaymentDropped, m.UntrustedForwarded, m.URLsScrubbed, m.CustomDataScrubbed)
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Timed observes the time h takes into IngestLatency under endpoint.
func (m *Metrics) Timed(endpoint string, h http.Handler) http.Handler {
	obs := m.IngestLatency.WithLabelValues(endpoint)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		obs.Observe(time.Since(start).Seconds())
	})
}
