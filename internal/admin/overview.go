package admin

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

const (
	activityWindow = 24 * time.Hour
	latencyWindow  = time.Hour
	latencySample  = 5000 // newest deliveries used for the percentiles
)

type overview struct {
	Now        time.Time
	Chart      chart
	In         int
	Delivered  int
	Dead       int
	Depth      int
	DepthSites []siteCount
	Latency    latency
	Errors     []store.ErrorCount
	Paused     []pausedSite
	Sites      int
}

type siteCount struct {
	Site  string
	Count int
}

type latency struct {
	N   int
	P50 time.Duration
	P95 time.Duration
	Max time.Duration
}

type pausedSite struct {
	Key    string
	Name   string
	Reason string
}

func (h *Handler) overview(ctx context.Context) (*overview, error) {
	now := h.now()
	counts, err := h.admin.Activity(ctx, now.Add(-activityWindow), now.Add(time.Minute))
	if err != nil {
		return nil, err
	}
	o := &overview{Now: now, Chart: activityChart(counts, now, activityWindow)}
	for _, c := range counts {
		o.In += c.In
		o.Delivered += c.Delivered
		o.Dead += c.Dead
	}
	depth, err := h.store.Depth(ctx)
	if err != nil {
		return nil, err
	}
	for k, n := range depth {
		o.Depth += n
		o.DepthSites = append(o.DepthSites, siteCount{Site: k, Count: n})
	}
	slices.SortFunc(o.DepthSites, func(a, b siteCount) int { return b.Count - a.Count })
	lat, err := h.admin.DeliveryLatencies(ctx, now.Add(-latencyWindow), latencySample)
	if err != nil {
		return nil, err
	}
	o.Latency = percentiles(lat)
	if o.Errors, err = h.admin.Errors(ctx, now.Add(-activityWindow), 10); err != nil {
		return nil, err
	}
	sites, err := h.store.ListSites(ctx)
	if err != nil {
		return nil, err
	}
	o.Sites = len(sites)
	for _, s := range sites {
		if s.Paused {
			o.Paused = append(o.Paused, pausedSite{Key: s.Key, Name: s.Name, Reason: s.PauseReason})
		}
	}
	return o, nil
}

func percentiles(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return latency{N: len(s), P50: at(0.50), P95: at(0.95), Max: s[len(s)-1]}
}

func (h *Handler) overviewPage(w http.ResponseWriter, r *http.Request) error {
	o, err := h.overview(r.Context())
	if err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "overview", "Overview", o)
}

func (h *Handler) apiOverview(w http.ResponseWriter, r *http.Request) error {
	o, err := h.overview(r.Context())
	if err != nil {
		return err
	}
	type errJSON struct {
		Site   string    `json:"site"`
		State  string    `json:"state"`
		Reason string    `json:"reason"`
		Count  int       `json:"count"`
		Last   time.Time `json:"last"`
	}
	errs := []errJSON{}
	for _, e := range o.Errors {
		errs = append(errs, errJSON{e.SiteKey, e.State, e.Reason, e.Count, e.Last})
	}
	paused := []map[string]string{}
	for _, p := range o.Paused {
		paused = append(paused, map[string]string{"site": p.Key, "name": p.Name, "reason": p.Reason})
	}
	depth := map[string]int{}
	for _, d := range o.DepthSites {
		depth[d.Site] = d.Count
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"window_hours":        int(activityWindow.Hours()),
		"events_in":           o.In,
		"events_delivered":    o.Delivered,
		"events_dead":         o.Dead,
		"queue_depth":         o.Depth,
		"queue_depth_by_site": depth,
		"delivery_latency": map[string]any{
			"window_minutes": int(latencyWindow.Minutes()), "samples": o.Latency.N,
			"p50_seconds": o.Latency.P50.Seconds(), "p95_seconds": o.Latency.P95.Seconds(), "max_seconds": o.Latency.Max.Seconds(),
		},
		"errors":       errs,
		"paused_sites": paused,
		"sites":        o.Sites,
		"version":      h.cfg.Version,
	})
	return nil
}
