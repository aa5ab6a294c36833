package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// TestLiveEventsMarkEnrichedKeys: the live-event page and the API name the
// keys identity stitching added to an event, and nothing for the others.
func TestLiveEventsMarkEnrichedKeys(t *testing.T) {
	b := setup(t)
	c := b.client(t)
	b.login(t, c)
	s := b.mustSite(t, "Shop")
	res, err := b.db.Enqueue(t.Context(), []store.NewEvent{
		{SiteKey: s.Key, EventName: "Purchase", EventID: randHex(8), EventTime: time.Now(), Payload: payload("Purchase", hashedUserData()),
			Source: "server", Enriched: []string{"fbc", "client_ip_address"}},
		{SiteKey: s.Key, EventName: "Lead", EventID: randHex(8), EventTime: time.Now(), Payload: payload("Lead", hashedUserData()), Source: "server"},
	})
	if err != nil || len(res) != 2 {
		t.Fatalf("enqueue: %v, %v", res, err)
	}
	_, out := b.get(t, c, "/admin/events")
	if n := strings.Count(out, `class="enriched"`); n != 1 {
		t.Errorf("live events page marks %d events as enriched, want 1", n)
	}
	if !strings.Contains(out, "<code>fbc</code>, <code>client_ip_address</code>") {
		t.Error("live events page does not name the added keys fbc, client_ip_address")
	}
}
