package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/sharedtest"
)

// peerInputs returns the raw inputs of the peer vectors by field.
func peerInputs(t *testing.T) map[normalize.Field][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedtest.Dir(t), "testdata", "peer-normalization.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[normalize.Field][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct{ Field, Input string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out[normalize.Field(r.Field)] = append(out[normalize.Field(r.Field)], r.Input)
	}
	return out
}

// TestHashEnrichedAgreesWithHashUserData checks that hashing the event's
// own user_data, then only what enrichment filled, gives what hashing the
// enriched user_data at once gives.
func TestHashEnrichedAgreesWithHashUserData(t *testing.T) {
	t.Parallel()
	in := peerInputs(t)
	r := rand.New(rand.NewPCG(7, 8))
	pick := func(f normalize.Field) []string {
		l := make([]string, r.IntN(3))
		for i := range l {
			l[i] = in[f][r.IntN(len(in[f]))]
		}
		return l
	}
	added := func(f normalize.Field) []string {
		switch r.IntN(4) {
		case 0: // what an identity holds: hashes
			return []string{fmt.Sprintf("%064x", r.IntN(5)), fmt.Sprintf("%064X", r.IntN(5))}
		case 1: // anything else is normalized as a raw value would be
			return pick(f)
		case 2:
			return []string{}
		}
		return nil
	}
	regions := []string{"", "US", "gb", "DE", "in"}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var filledSome int
	for i := 0; i < 10_000; i++ {
		var raw normalize.UserData
		for _, f := range normalize.Fields {
			if r.IntN(2) == 0 {
				raw.Set(f, pick(f))
			}
		}
		enriched := raw
		for _, f := range normalize.Fields {
			switch {
			case len(raw.Get(f)) == 0 && r.IntN(3) == 0:
				enriched.Set(f, added(f))
			case r.IntN(50) == 0: // an enricher that breaks the rule
				enriched.Set(f, added(f))
			}
		}
		o := normalize.Options{Region: regions[r.IntN(len(regions))], DateOrder: normalize.DateOrder(r.IntN(3)), Now: now}
		hashed := normalize.HashUserData(&raw, o)
		hashEnriched(&hashed, &raw, enriched, o)
		want := normalize.HashUserData(&enriched, o)
		for _, f := range normalize.Fields {
			if got, want := hashed.Get(f), want.Get(f); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("raw %q enriched %q (%+v): %s = %q, want %q", raw, enriched, o, f, got, want)
			}
		}
		if !reflect.DeepEqual(raw, enriched) {
			filledSome++
		}
	}
	if filledSome < 2500 {
		t.Errorf("only %d of 10000 cases enriched", filledSome)
	}
}

// TestEncodedSize checks that a fully populated event fits the buffer
// Marshal starts with.
func TestEncodedSize(t *testing.T) {
	t.Parallel()
	h := func(i int) event.List { return event.List{fmt.Sprintf("%064x", i)} }
	ev := &event.Event{EventName: "Purchase", EventTime: 1_760_000_000, EventID: "b1764360000000000000-255-99", ActionSource: "website",
		EventSourceURL: "https://shop.example.com/checkout?step=3",
		UserData: event.UserData{Em: h(1), Ph: h(2), Fn: h(3), Ln: h(4), Db: h(5), Ge: h(6), Ct: h(7), St: h(8), Zp: h(9), Country: h(10), ExternalID: h(11),
			ClientIPAddress: "2001:db8::7", ClientUserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
			Fbp: "fb.1.1596403881668.1116446470", Fbc: "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB",
			SubscriptionID: "s", FbLoginID: "1", LeadID: "2", AnonID: "a", Madid: "m", PageID: "p", PageScopedUserID: "u", CtwaClid: "c", IgAccountID: "i", IgSid: "g"},
		CustomData:            json.RawMessage(`{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`),
		DataProcessingOptions: []string{"LDU"}, DPOCountry: new(int), DPOState: new(int), CustomerSegmentation: "x",
		OriginalEventData: json.RawMessage(`{}`), AttributionData: json.RawMessage(`{}`), AppData: json.RawMessage(`{}`), MessagingChannel: "whatsapp",
	}
	b, _ := Marshal(ev)
	if len(b) > encodedSize(ev) {
		t.Errorf("encoded %d bytes, more than the %d estimated", len(b), encodedSize(ev))
	}
	if cap(b) > 2*len(b) {
		t.Errorf("buffer of %d for %d bytes", cap(b), len(b))
	}
}
