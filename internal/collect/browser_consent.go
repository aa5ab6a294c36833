package collect

import (
	"encoding/json"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/store"
)

// heldFill completes the events a visitor sent before granting consent,
// as they are released: they were stored without fbp/fbc (no cookie may
// be read before consent), and the grant carries both. An event whose page
// URL holds an fbclid gets the fbc of that click when the grant has none
// for it (the landing page's click, kept though the SPA dropped the
// parameter since), minted at the event's time.
func heldFill(fbp, fbc string) store.HeldFill {
	return func(p []byte) []byte {
		var ev map[string]json.RawMessage
		if json.Unmarshal(p, &ev) != nil {
			return p
		}
		var ud map[string]json.RawMessage
		if raw, ok := ev["user_data"]; ok && json.Unmarshal(raw, &ud) != nil {
			return p
		}
		if ud == nil {
			ud = map[string]json.RawMessage{}
		}
		changed := false
		set := func(k, v string) {
			var old string
			if json.Unmarshal(ud[k], &old); old == "" && v != "" {
				ud[k], _ = json.Marshal(v)
				changed = true
			}
		}
		if fbcookie.Valid(fbp) {
			set("fbp", fbp)
		}
		var pageURL string
		var at int64
		json.Unmarshal(ev["event_source_url"], &pageURL)
		json.Unmarshal(ev["event_time"], &at)
		clickID, idx := fbcookie.ClickID(pageURL, ""), 0
		if fbcookie.UsableClickID(clickID) {
			idx = fbcookie.CookieDomain(pageURL, nil).Index
		}
		v, _ := fbcookie.ResolveFbc(time.Unix(at, 0), idx, fbc, clickID)
		set("fbc", v)
		if !changed {
			return p
		}
		ev["user_data"], _ = json.Marshal(ud)
		out, err := json.Marshal(ev)
		if err != nil {
			return p
		}
		return out
	}
}
