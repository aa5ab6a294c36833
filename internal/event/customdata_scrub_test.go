package event

import (
	"encoding/json"
	"testing"
	"time"
)

func TestScrubCustomData(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// Named for personal data or a secret, at any depth.
		{`{"value":1,"currency":"USD","customer_email":"x","Phone":"1","password":"p"}`, `{"currency":"USD","value":1}`},
		{`{"order":{"id":"A1","billing":{"first_name":"Grace","zip":"SW1A","city":"London","sku":"L"}}}`, `{"order":{"billing":{"sku":"L"},"id":"A1"}}`},
		{`{"customer\u005femail":"x","a":1}`, `{"a":1}`},
		// Values, whatever their name: members and array elements.
		{`{"ref":"grace@example.com","who":"+44 20 7946 0958","x":"4111 1111 1111 1111","y":4111111111111111,"z":"ok"}`, `{"z":"ok"}`},
		{`{"tags":["vip","grace@example.com",5555555555554444,"+1 650 555 1212"],"n":2}`, `{"n":2,"tags":["vip"]}`},
		// Ids keep long numbers: a product's may pass a card's checks.
		{`{"content_ids":["4111111111111111",4111111111111111],"contents":[{"id":"4111111111111111","quantity":2}],"order_id":"5555555555554444","x":1}`, ``},
		// but never an email address.
		{`{"order_id":"grace@example.com","value":1.50}`, `{"value":1.50}`},
		// Nothing to take: as it was, byte for byte.
		{`{"value": 49.90, "currency":"USD", "content_name":"Blue lamp", "contents":[{"id":"SKU-1","quantity":1}], "status":"<b>"}`, ``},
		{`{"value":"12","num_items":1234567890123,"search_string":"lamp","handle":"@grace"}`, ``},
	} {
		got, scrubbed := scrubCustomData(json.RawMessage(c.in))
		want := c.want
		if want == "" {
			want = c.in
		}
		if string(got) != want || scrubbed != (c.want != "") {
			t.Errorf("scrubCustomData(%s)\n got %s (%v)\nwant %s", c.in, got, scrubbed, want)
		}
		if again, scrubbed := scrubCustomData(got); scrubbed || string(again) != string(got) {
			t.Errorf("scrubCustomData(%s) = %s: not stable", got, again)
		}
	}
}

// TestScrubCustomDataKeepsCleanData: custom_data with nothing to take
// costs no allocation (unless a key has an escape).
func TestScrubCustomDataKeepsCleanData(t *testing.T) {
	raw := json.RawMessage(`{"value":49.90,"currency":"USD","content_type":"product","content_ids":["SKU-1","SKU-2"],"contents":[{"id":"SKU-1","quantity":1,"item_price":24.95}],"order_id":"1001-4711","café":"ok"}`)
	if n := testing.AllocsPerRun(100, func() { scrubCustomData(raw) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestPrepareScrubsCustomData: Prepare takes personal data out of
// custom_data and says so, also when the request's previous event had
// the same custom_data without it (the Seen shortcut).
func TestPrepareScrubsCustomData(t *testing.T) {
	now := time.Unix(1760000000, 0)
	var seen Seen
	for _, c := range []struct {
		custom   string
		scrubbed bool
	}{
		{`{"value":1,"currency":"usd"}`, false},
		{`{"value":1,"currency":"usd","email":"grace@example.com"}`, true},
		{`{"value":1,"currency":"usd","email":"grace@example.com"}`, true},
		{`{"value":1,"currency":"USD"}`, false},
	} {
		ev, err := Decode([]byte(`{"event_name":"Purchase","event_time":1760000000,"action_source":"email","user_data":{"em":"a@b.co"},"custom_data":`+c.custom+`}`), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.PrepareSeen(now, "", &seen); err != nil {
			t.Fatal(err)
		}
		if ev.CustomDataScrubbed != c.scrubbed || string(ev.CustomData) != `{"value":1,"currency":"USD"}` && string(ev.CustomData) != `{"currency":"USD","value":1}` {
			t.Errorf("%s: custom_data %s, scrubbed %v", c.custom, ev.CustomData, ev.CustomDataScrubbed)
		}
	}
}

// FuzzScrubCustomData: whatever custom_data holds, the scrubbed one is
// valid JSON with nothing left to take, and clean data is left as it was.
func FuzzScrubCustomData(f *testing.F) {
	for _, s := range []string{
		`{"value":1,"currency":"USD","customer_email":"x"}`, `{"tags":["a@b.co",1]}`, `{"a":{"b":[{"phone":1}]}}`,
		`{"x":"4111111111111111","id":4111111111111111}`, `{"k\u0065y":1}`, `[1,"+44 20 7946 0958"]`, `"a@b.co"`, `{`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, scrubbed := scrubCustomData(json.RawMessage(s))
		if !scrubbed {
			if string(out) != s {
				t.Fatalf("changed %q to %q without scrubbing", s, out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("scrubbed %q to invalid %q", s, out)
		}
		if again, more := scrubCustomData(out); more {
			t.Fatalf("scrubbed %q to %q, which still holds %q's difference", s, out, again)
		}
	})
}

// TestMetaKeysAreNotPersonal: the names metaKey passes without asking
// personalKey are not personal by its rule either, and say the same about
// ids: the switch is only quicker.
func TestMetaKeysAreNotPersonal(t *testing.T) {
	for _, k := range []string{"id", "content_ids", "order_id", "value", "currency", "contents", "content_type", "content_name",
		"content_category", "num_items", "predicted_ltv", "search_string", "status", "delivery_category", "quantity",
		"item_price", "title", "description", "brand", "category"} {
		id, known := metaKey(k)
		if !known {
			t.Errorf("metaKey(%q) does not know it", k)
		}
		if personalKey(k) || id != isIDKey(k) {
			t.Errorf("metaKey(%q) = %v, but personalKey %v, isIDKey %v", k, id, personalKey(k), isIDKey(k))
		}
	}
}
