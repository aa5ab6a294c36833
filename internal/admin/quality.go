package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

const (
	// qualitySample bounds the scan: the newest events, decrypted one by one.
	qualitySample = 5000
	// qualityWindow is the period Meta's EMQ looks at (spec §8: 48 hours).
	qualityWindow = 48 * time.Hour
)

// matchKey is a user_data key and its weight in the estimated score.
type matchKey struct {
	Key    string
	Label  string
	Weight float64
	Tier   string
}

// matchKeys follows spec §8: Meta's EMQ help page ranks em and fbc high;
// db, country, ph, external_id and fbp medium; fn, ln, ct and zp low (no
// numbers are published). D-BP and D-CI add that client_ip_address and
// client_user_agent on every event improve matching, so they count as low;
// st and ge are not on Meta's list and count half of low.
var matchKeys = []matchKey{
	{"em", "email", 3, "high"},
	{"fbc", "click id", 3, "high"},
	{"ph", "phone", 2, "medium"},
	{"external_id", "external id", 2, "medium"},
	{"fbp", "browser id", 2, "medium"},
	{"country", "country", 2, "medium"},
	{"db", "birthdate", 2, "medium"},
	{"client_ip_address", "IP address", 1, "low"},
	{"client_user_agent", "user agent", 1, "low"},
	{"fn", "first name", 1, "low"},
	{"ln", "last name", 1, "low"},
	{"ct", "city", 1, "low"},
	{"zp", "zip", 1, "low"},
	{"st", "state", 0.5, "minor"},
	{"ge", "gender", 0.5, "minor"},
}

// scoreFull is the weighted coverage that earns 10: em, fbc, ph,
// external_id and fbp plus IP and user agent on every event, the set spec §8
// ("practical order") asks of every event. More keys cannot push past 10.
const scoreFull = 3 + 3 + 2 + 2 + 2 + 1 + 1

type qualityRow struct {
	EventName string             `json:"event_name"`
	Events    int                `json:"events"`
	Share     []float64          `json:"-"`
	Coverage  map[string]float64 `json:"coverage"`
	Score     float64            `json:"estimated_score"`
}

type qualityView struct {
	Sites   []*store.Site `json:"-"`
	Site    string        `json:"site"`
	Keys    []matchKey    `json:"-"`
	Rows    []qualityRow  `json:"event_names"`
	Scanned int           `json:"events_scanned"`
	Since   time.Time     `json:"since"`
	Formula string        `json:"formula"`
	Full    float64       `json:"-"`
}

var scoreFormula = fmt.Sprintf("score = min(10, 10 × Σ(weight × share) / %d); weights: em 3, fbc 3, ph 2, external_id 2, "+
	"fbp 2, country 2, db 2, client_ip_address 1, client_user_agent 1, fn 1, ln 1, ct 1, zp 1, st 0.5, ge 0.5; "+
	"share = fraction of events carrying the key", scoreFull)

// userDataKeys lists the keys of a payload's user_data that carry a value.
func userDataKeys(payload []byte) map[string]bool {
	var ev struct {
		UserData map[string]json.RawMessage `json:"user_data"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return nil
	}
	out := make(map[string]bool, len(ev.UserData))
	for k, v := range ev.UserData {
		v = bytes.TrimSpace(v)
		switch string(v) {
		case "", "null", `""`, "[]", "{}":
			continue
		}
		out[k] = true
	}
	return out
}

func (h *Handler) quality(ctx context.Context, site string) (*qualityView, error) {
	if err := h.checkSiteFilter(ctx, site); err != nil {
		return nil, err
	}
	now := h.now()
	since := now.Add(-qualityWindow)
	its, err := h.store.Items(ctx, site, "", qualitySample)
	if err != nil {
		return nil, err
	}
	type acc struct {
		n    int
		hits []int
	}
	by := map[string]*acc{}
	v := &qualityView{Site: site, Keys: matchKeys, Since: since, Formula: scoreFormula, Full: scoreFull}
	for _, it := range its {
		if it.CreatedAt.Before(since) {
			break // newest first
		}
		v.Scanned++
		a := by[it.EventName]
		if a == nil {
			a = &acc{hits: make([]int, len(matchKeys))}
			by[it.EventName] = a
		}
		a.n++
		keys := userDataKeys(it.Payload)
		for i, k := range matchKeys {
			if keys[k.Key] {
				a.hits[i]++
			}
		}
	}
	for name, a := range by {
		row := qualityRow{EventName: name, Events: a.n, Coverage: map[string]float64{}}
		sum := 0.0
		for i, k := range matchKeys {
			share := float64(a.hits[i]) / float64(a.n)
			row.Share = append(row.Share, share)
			row.Coverage[k.Key] = math.Round(share*1000) / 1000
			sum += k.Weight * share
		}
		row.Score = math.Round(min(10, 10*sum/scoreFull)*10) / 10
		v.Rows = append(v.Rows, row)
	}
	slices.SortFunc(v.Rows, func(a, b qualityRow) int { return b.Events - a.Events })
	return v, nil
}

func (h *Handler) qualityPage(w http.ResponseWriter, r *http.Request) error {
	v, err := h.quality(r.Context(), r.URL.Query().Get("site"))
	if err != nil {
		return err
	}
	if v.Sites, err = h.store.ListSites(r.Context()); err != nil {
		return err
	}
	return h.render(w, r, http.StatusOK, "quality", "Match quality", v)
}

func (h *Handler) apiMatchQuality(w http.ResponseWriter, r *http.Request) error {
	v, err := h.quality(r.Context(), r.URL.Query().Get("site"))
	if err != nil {
		return err
	}
	if v.Rows == nil {
		v.Rows = []qualityRow{}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// heatClass buckets a share for the table's colours.
func heatClass(share float64) string {
	switch {
	case share >= 0.9:
		return "h4"
	case share >= 0.6:
		return "h3"
	case share >= 0.3:
		return "h2"
	case share > 0:
		return "h1"
	}
	return "h0"
}
