package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/store"
)

// deadOutcome gives an item up: its reason starts with its class, so an
// operator reading the reason alone sees the class too.
func deadOutcome(id int64, class store.DeadClass, why, trace string) store.Outcome {
	return store.Outcome{ID: id, Kind: store.OutcomeDead, Class: class, Reason: string(class) + ": " + why, TraceID: trace}
}

// deliver sends items and decides an outcome for each.
func (d *Dispatcher) deliver(ctx context.Context, site *store.Site, items []store.Item) []store.Outcome {
	now := d.Now()
	outs := make([]store.Outcome, 0, len(items))
	// Usually no item has expired and the live items are items itself;
	// they are copied from the first expired one on.
	var live []store.Item
	for i, it := range items {
		if now.Sub(it.EventTime) > capi.MaxEventAge-ExpiryMargin {
			if live == nil {
				live = append(make([]store.Item, 0, len(items)), items[:i]...)
			}
			outs = append(outs, deadOutcome(it.ID, store.DeadExpired, "event_time is past Meta's 7-day window; it can no longer be sent", ""))
			continue
		}
		if live != nil {
			live = append(live, it)
		}
	}
	if live == nil {
		live = items
	}
	// One request per test_event_code: a request's own code overrides the
	// site's, and Meta takes one code per request.
	for len(live) > 0 {
		code := live[0].TestEventCode
		n := 0
		for n < len(live) && live[n].TestEventCode == code {
			n++
		}
		if n == len(live) {
			return d.send(ctx, site, live, outs)
		}
		var same, rest []store.Item
		for _, it := range live {
			if it.TestEventCode == code {
				same = append(same, it)
			} else {
				rest = append(rest, it)
			}
		}
		outs = d.send(ctx, site, same, outs)
		live = rest
	}
	return outs
}

// send delivers items as one request; on a payload rejection it bisects.
func (d *Dispatcher) send(ctx context.Context, site *store.Site, items []store.Item, outs []store.Outcome) []store.Outcome {
	dest := d.Meta
	if site.Sandbox() {
		dest = d.Sandbox
	}
	b := &Batch{Events: make([]json.RawMessage, len(items)), TestEventCode: site.TestEventCode}
	if items[0].TestEventCode != "" {
		b.TestEventCode = items[0].TestEventCode
	}
	for i, it := range items {
		b.Events[i] = it.Payload
	}
	start := time.Now()
	resp, err := dest.Send(ctx, site, b)
	if d.Metrics != nil {
		outcome := "ok"
		if err != nil {
			outcome = capi.Classify(err).String()
		}
		d.Metrics.GraphLatency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}
	if err == nil {
		trace := ""
		if resp != nil {
			trace = resp.FbtraceID
		}
		for _, it := range items {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: trace})
		}
		return outs
	}
	trace := traceOf(err)
	switch capi.Classify(err) {
	case capi.ClassAuth:
		reason := "Meta refused the access token or permissions: " + errText(err) +
			". Set a new token with `capirelay site set-token --site " + site.Key + " --access-token …` to resume."
		if perr := d.Store.SetPaused(ctx, site.Key, true, reason); perr != nil {
			d.Logger.Error("pause site", "site", site.Key, "err", perr)
		}
		d.Logger.Warn("delivery paused", "site", site.Key, "reason", errText(err), "fbtrace_id", trace)
		for _, it := range items {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeRelease})
		}
		return outs
	case capi.ClassInvalid, capi.ClassExpired:
		if len(items) == 1 {
			class := store.DeadRejected
			if capi.Classify(err) == capi.ClassExpired {
				class = store.DeadExpired
			}
			return append(outs, deadOutcome(items[0].ID, class, errText(err), trace))
		}
		half := len(items) / 2
		outs = d.send(ctx, site, items[:half], outs)
		return d.send(ctx, site, items[half:], outs)
	default: // transient
		now := d.Now()
		for _, it := range items {
			at := d.backoff().Next(it.Attempts, now, retryAfter(err), d.Rand())
			if at.Sub(it.EventTime) > capi.MaxEventAge-ExpiryMargin {
				outs = append(outs, deadOutcome(it.ID, store.DeadExpired,
					"still failing ("+errText(err)+") when event_time reached Meta's 7-day window", trace))
				continue
			}
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeRetry, RetryAt: at, Reason: errText(err), TraceID: trace})
		}
		return outs
	}
}

func retryAfter(err error) time.Duration {
	var ce *capi.Error
	if errors.As(err, &ce) {
		return ce.RetryAfter
	}
	return 0
}

func traceOf(err error) string {
	var ce *capi.Error
	if errors.As(err, &ce) {
		return ce.TraceID
	}
	return ""
}

// errText is an error's text, bounded, for operators.
func errText(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
