package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/store"
)

const (
	eventsLimit      = 100
	deadLettersLimit = 200

	// metaWindow is how old an event_time Meta still accepts (spec §7.4:
	// "give up before event_time is 7 days old").
	metaWindow = event.Window
	// replayMargin leaves a replayed event time to wait in the queue and be
	// retried once before it crosses metaWindow.
	replayMargin = time.Hour
)

type itemRow struct {
	ID          int64     `json:"id"`
	Site        string    `json:"site"`
	EventName   string    `json:"event_name"`
	EventID     string    `json:"event_id"`
	EventTime   time.Time `json:"event_time"`
	Source      string    `json:"source"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	TraceID     string    `json:"fbtrace_id"`
	LastError   string    `json:"last_error"`
	CreatedAt   time.Time `json:"created_at"`
	DeliveredAt time.Time `json:"delivered_at"`
	// Payload is the event exactly as sent to Meta, except that
	// client_ip_address is shortened to its network (/24, /48).
	Payload    json.RawMessage `json:"payload"`
	PayloadErr string          `json:"payload_error,omitempty"`
	Expired    bool            `json:"replay_refused,omitempty"` // dead letters past Meta's window
	// Enriched names the user_data keys identity stitching added.
	Enriched []string `json:"enriched,omitempty"`
	text     string
}

// PayloadText is the indented payload for the page.
func (it *itemRow) PayloadText() string { return it.text }

func (h *Handler) row(it store.Item) *itemRow {
	r := &itemRow{ID: it.ID, Site: it.SiteKey, EventName: it.EventName, EventID: it.EventID, EventTime: it.EventTime,
		Source: it.Source, State: it.State, Attempts: it.Attempts, NextAttempt: it.NextAttempt, TraceID: it.TraceID,
		LastError: it.LastError, CreatedAt: it.CreatedAt, DeliveredAt: it.DeliveredAt, Enriched: it.Enriched}
	p, err := DisplayPayload(it.Payload)
	if err != nil {
		r.PayloadErr = "the stored payload is not JSON"
		r.Payload = json.RawMessage("null")
	} else {
		r.Payload = p
		var buf bytes.Buffer
		json.Indent(&buf, p, "", "  ")
		r.text = buf.String()
	}
	r.Expired = it.State == store.StateDead && h.pastWindow(it.EventTime)
	return r
}

func (h *Handler) pastWindow(eventTime time.Time) bool {
	return h.now().Sub(eventTime) > metaWindow-replayMargin
}

// DisplayPayload shortens client_ip_address in an event, or in each event
// of a request ({"data": [...]}), for showing: the full address is
// personal data and the network is enough to check that one was sent. The
// dashboard and capirelay sandbox tail show payloads through it.
func DisplayPayload(p []byte) (json.RawMessage, error) {
	type userData struct {
		IP string `json:"client_ip_address"`
	}
	var ev struct {
		UserData userData `json:"user_data"`
		Data     []struct {
			UserData userData `json:"user_data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(p, &ev); err != nil {
		return nil, err
	}
	ips := []string{ev.UserData.IP}
	for _, d := range ev.Data {
		ips = append(ips, d.UserData.IP)
	}
	for _, ip := range ips {
		if ip != "" {
			old, _ := json.Marshal(ip)
			short, _ := json.Marshal(shortenIP(ip))
			p = bytes.ReplaceAll(p, old, short)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func shortenIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "(hidden)"
	}
	bits := 48
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

type eventsView struct {
	Sites  []*store.Site
	Site   string
	State  string
	States []string
	Items  []*itemRow
}

// checkSiteFilter checks a site= filter: "" means every site, and a key
// no site has is a 404 naming site, not an empty list that looks like a
// quiet site.
func (h *Handler) checkSiteFilter(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	_, err := h.store.Site(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return errUnknownSite
	}
	return err
}

var errUnknownSite = &Error{Status: http.StatusNotFound, Field: "site", Msg: "unknown site key"}

func (h *Handler) items(ctx context.Context, site, state string, limit int) ([]*itemRow, error) {
	switch state {
	case "", store.StatePending, store.StateInflight, store.StateDelivered, store.StateDead, store.StateHeld:
	default:
		return nil, errorf(http.StatusBadRequest, "state", "state must be pending, inflight, delivered, dead or held")
	}
	if err := h.checkSiteFilter(ctx, site); err != nil {
		return nil, err
	}
	its, err := h.store.Items(ctx, site, state, limit)
	if err != nil {
		return nil, err
	}
	rows := make([]*itemRow, 0, len(its))
	for _, it := range its {
		rows = append(rows, h.row(it))
	}
	return rows, nil
}

func (h *Handler) eventsPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	rows, err := h.items(r.Context(), q.Get("site"), q.Get("state"), eventsLimit)
	if err != nil {
		return err
	}
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "events", "Live events", eventsView{Sites: sites, Site: q.Get("site"), State: q.Get("state"),
		States: []string{store.StatePending, store.StateInflight, store.StateDelivered, store.StateDead, store.StateHeld}, Items: rows})
}

func (h *Handler) apiEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := eventsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "limit", "limit is 1 to 1000")
		}
		limit = n
	}
	rows, err := h.items(r.Context(), q.Get("site"), q.Get("state"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": rows})
	return nil
}

type deadView struct {
	Sites    []*store.Site
	Site     string
	Items    []*itemRow
	Replayed string
}

func (h *Handler) deadLettersPage(w http.ResponseWriter, r *http.Request) error {
	site := r.URL.Query().Get("site")
	rows, err := h.items(r.Context(), site, store.StateDead, deadLettersLimit)
	if err != nil {
		return err
	}
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "deadletters", "Dead letters",
		deadView{Sites: sites, Site: site, Items: rows, Replayed: r.URL.Query().Get("replayed")})
}

func (h *Handler) apiDeadLetters(w http.ResponseWriter, r *http.Request) error {
	rows, err := h.items(r.Context(), r.URL.Query().Get("site"), store.StateDead, deadLettersLimit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": rows})
	return nil
}

// replay puts a dead letter back in the queue unless Meta would refuse it
// for its age.
func (h *Handler) replay(ctx context.Context, idText string) (int64, error) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "id", "the id is a number")
	}
	it, err := h.store.Item(ctx, id)
	if err != nil {
		return 0, err
	}
	if it.State != store.StateDead {
		return 0, errorf(http.StatusConflict, "id", "event %d is %s, not dead; only dead letters can be replayed", id, it.State)
	}
	if h.pastWindow(it.EventTime) {
		return 0, errorf(http.StatusUnprocessableEntity, "id",
			"event %d happened at %s, more than 7 days ago: Meta refuses events older than 7 days, so it cannot be replayed. "+
				"If it still matters, send it again as a new event with a current event_time.",
			id, it.EventTime.UTC().Format(time.RFC3339))
	}
	if err := h.store.Replay(ctx, id, h.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, errorf(http.StatusConflict, "id", "event %d is no longer dead", id)
		}
		return 0, err
	}
	h.log.Info("dead letter replayed", "site", it.SiteKey, "outbox_id", id, "event_name", it.EventName)
	return id, nil
}

func (h *Handler) replayForm(w http.ResponseWriter, r *http.Request) error {
	id, err := h.replay(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/dead-letters?replayed="+strconv.FormatInt(id, 10), http.StatusSeeOther)
	return nil
}

func (h *Handler) apiReplay(w http.ResponseWriter, r *http.Request) error {
	id, err := h.replay(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "state": store.StatePending})
	return nil
}
