package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"math/bits"
	"strconv"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/metarules"
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
		if expired(it, now) {
			if live == nil {
				live = append(make([]store.Item, 0, len(items)), items[:i]...)
			}
			outs = append(outs, deadOutcome(it.ID, store.DeadExpired, "event_time is past Meta's window ("+windowText(it)+"); it can no longer be sent", ""))
			continue
		}
		if live != nil {
			live = append(live, it)
		}
	}
	if live == nil {
		live = items
	}
	// One request per test_event_code and parameters: a request's own
	// code overrides the site's, and Meta takes one of each per request.
	for len(live) > 0 {
		code, params := live[0].TestEventCode, live[0].Params
		n := 0
		for n < len(live) && live[n].TestEventCode == code && live[n].Params == params {
			n++
		}
		if n == len(live) {
			return d.send(ctx, site, live, outs)
		}
		var same, rest []store.Item
		for _, it := range live {
			if it.TestEventCode == code && it.Params == params {
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

// send delivers items as one request; when Meta refuses the request for
// its payload, bisect finds the events it refuses.
func (d *Dispatcher) send(ctx context.Context, site *store.Site, items []store.Item, outs []store.Outcome) []store.Outcome {
	resp, err := d.post(ctx, site, items)
	if err == nil {
		return delivered(outs, items, resp)
	}
	switch capi.Classify(err) {
	case capi.ClassAuth:
		return d.pause(ctx, site, err, outs, items)
	case capi.ClassInvalid, capi.ClassExpired:
		return d.bisect(ctx, site, items, err, outs)
	default:
		return d.retry(outs, items, err)
	}
}

// post sends items as one request.
func (d *Dispatcher) post(ctx context.Context, site *store.Site, items []store.Item) (*capi.Response, error) {
	dest := d.Meta
	if site.Sandbox() {
		dest = d.Sandbox
	}
	b := &Batch{Events: make([]json.RawMessage, len(items)), TestEventCode: site.TestEventCode, Params: items[0].Params}
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
	return resp, err
}

func delivered(outs []store.Outcome, items []store.Item, resp *capi.Response) []store.Outcome {
	trace := ""
	if resp != nil {
		trace = resp.FbtraceID
	}
	for _, it := range items {
		outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: trace})
	}
	return outs
}

// pause stops delivery to a site whose token Meta refused; items are
// given back untouched.
func (d *Dispatcher) pause(ctx context.Context, site *store.Site, err error, outs []store.Outcome, items ...[]store.Item) []store.Outcome {
	reason := "Meta refused the access token or permissions: " + errText(err) +
		". Set a new token with `capirelay site set-token --site " + site.Key + " --access-token-file PATH` (or `--access-token -` to read it from standard input) to resume."
	if perr := d.Store.SetPaused(ctx, site.Key, true, reason); perr != nil {
		d.Logger.Error("pause site", "site", site.Key, "err", perr)
	}
	d.Logger.Warn("delivery paused", "site", site.Key, "reason", errText(err), "fbtrace_id", traceOf(err))
	return release(outs, items...)
}

// release gives items back untouched: due as they were, no attempt
// counted.
func release(outs []store.Outcome, items ...[]store.Item) []store.Outcome {
	for _, part := range items {
		for _, it := range part {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeRelease})
		}
	}
	return outs
}

// retry schedules items after a transient failure, with backoff.
func (d *Dispatcher) retry(outs []store.Outcome, items []store.Item, err error) []store.Outcome {
	now, trace := d.Now(), traceOf(err)
	for _, it := range items {
		at := d.backoff().Next(it.Attempts, now, retryAfter(err), d.Rand())
		if expired(it, at) {
			outs = append(outs, deadOutcome(it.ID, store.DeadExpired,
				"still failing ("+errText(err)+") when event_time reached Meta's window ("+windowText(it)+")", trace))
			continue
		}
		outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeRetry, RetryAt: at, Reason: errText(err), TraceID: trace})
	}
	return outs
}

// maxBisectCalls bounds the Graph requests bisect makes for a refused
// request of n events: enough to isolate one bad event (at most two
// requests per halving) with a few to spare for transient failures.
func maxBisectCalls(n int) int {
	return 2*bits.Len(uint(n-1)) + 3
}

// bisect isolates the events Meta refuses in items, a request it refused
// with refusal. It halves a part known to hold a refused event and sends
// the first half: accepted, the second half holds it (and is halved in
// turn without being sent whole); refused, the first half holds one and
// the second is sent on its own later. A part that fails transiently is
// sent again at once. Each isolated event is dead-lettered; every other
// event is delivered, or, once maxBisectCalls requests are spent, given
// back untouched (no attempt counted, no backoff) to be claimed again
// without the events already isolated — or retried with backoff when no
// request of this bisection got through, so a Graph outage is not
// hammered.
func (d *Dispatcher) bisect(ctx context.Context, site *store.Site, items []store.Item, refusal error, outs []store.Outcome) []store.Outcome {
	type part struct {
		items   []store.Item
		refusal error // Meta refused a request holding exactly these events
	}
	todo := []part{{items, refusal}}
	budget := maxBisectCalls(len(items))
	progress := false
	var lastErr error
	for len(todo) > 0 && budget > 0 {
		p := todo[0]
		if p.refusal != nil && len(p.items) == 1 {
			todo = todo[1:]
			outs = append(outs, refusedOutcome(p.items[0].ID, p.refusal))
			progress = true
			continue
		}
		send := p.items
		if p.refusal != nil {
			send = p.items[:len(p.items)/2]
		}
		budget--
		resp, err := d.post(ctx, site, send)
		if err != nil && capi.Classify(err) == capi.ClassAuth {
			rest := make([][]store.Item, len(todo))
			for i, q := range todo {
				rest[i] = q.items
			}
			return d.pause(ctx, site, err, outs, rest...)
		}
		if err != nil && !isRefusal(err) {
			lastErr = err // transient: the same part goes again
			continue
		}
		todo = todo[1:]
		rest := p.items[len(send):]
		var next []part
		switch {
		case err == nil:
			outs = delivered(outs, send, resp)
			progress = true
			if len(rest) > 0 {
				next = []part{{rest, p.refusal}} // the refused event is in the rest
			}
		case len(rest) > 0:
			next = []part{{send, err}, {rest, nil}}
		default:
			next = []part{{send, err}}
		}
		todo = append(next, todo...)
	}
	var left []store.Item
	for _, p := range todo {
		left = append(left, p.items...)
	}
	if len(left) == 0 {
		return outs
	}
	if !progress && lastErr != nil {
		return d.retry(outs, left, lastErr)
	}
	return release(outs, left)
}

// isRefusal reports whether Meta refused a request for its events.
func isRefusal(err error) bool {
	c := capi.Classify(err)
	return c == capi.ClassInvalid || c == capi.ClassExpired
}

// refusedOutcome dead-letters one event Meta refused on its own.
func refusedOutcome(id int64, err error) store.Outcome {
	class := store.DeadRejected
	if capi.Classify(err) == capi.ClassExpired {
		class = store.DeadExpired
	}
	return deadOutcome(id, class, errText(err), traceOf(err))
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

// expired reports whether it is too old to send at t: within ExpiryMargin
// of Meta's window for its action source (metarules.Window), it would be
// refused on arrival.
func expired(it store.Item, t time.Time) bool {
	age := t.Sub(it.EventTime)
	if age <= metarules.DefaultWindow-ExpiryMargin {
		return false // the common case, without reading the payload
	}
	return age > metarules.Window(actionSource(it.Payload))-ExpiryMargin
}

// windowText names an item's window for dead-letter reasons.
func windowText(it store.Item) string {
	src := actionSource(it.Payload)
	return strconv.Itoa(int(metarules.Window(src)/(24*time.Hour))) + " days for " + src + " events"
}

// actionSource reads a stored payload's action_source ("" if unreadable).
func actionSource(payload []byte) string {
	var ev struct {
		ActionSource string `json:"action_source"`
	}
	_ = json.Unmarshal(payload, &ev)
	return ev.ActionSource
}
