package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// TestPreparePayloadsAreMarshal checks the payloads Prepare writes into
// shared blocks (and hashes with a memo) against Marshal of each prepared
// event, and against hashing each event alone: over block boundaries, with
// events larger than a block, and with values repeated from event to event.
func TestPreparePayloadsAreMarshal(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	site := &store.Site{Key: "s", DefaultRegion: "US"}
	var ins, alone []Input
	for j := range 300 {
		mk := func() *event.Event {
			ev := &event.Event{EventName: "Lead", EventTime: event.Time(now.Unix()), EventID: fmt.Sprint("e-", j),
				ActionSource: "website", EventSourceURL: "https://shop.example.com/x",
				UserData: event.UserData{Em: event.List{fmt.Sprintf("p%d@example.com", j%7)}, Ph: event.List{"(650) 555-1212"},
					Fn: event.List{[]string{"Mary", "José", " mary "}[j%3]}, Ct: event.List{"Menlo Park"},
					Country: event.List{[]string{"US", "gb", "DE", ""}[j%4]}, Db: event.List{"03/04/1997"},
					ClientUserAgent: "Mozilla/5.0"}}
			if j%50 == 7 {
				ev.ReferrerURL = "https://shop.example.com/" + strings.Repeat("x", payloadBlock)
			}
			return ev
		}
		ins = append(ins, Input{Site: site, Event: mk(), Path: fmt.Sprintf("data[%d]", j), Source: SourceServer})
		alone = append(alone, Input{Site: site, Event: mk(), Path: fmt.Sprintf("data[%d]", j), Source: SourceServer})
	}
	p := &Pipeline{Now: func() time.Time { return now }}
	b := p.Prepare(context.Background(), ins)
	if len(b.news) < 250 {
		t.Fatalf("Prepare kept %d events of %d", len(b.news), len(ins))
	}
	big := 0
	for _, ne := range b.news {
		if len(ne.Payload) > payloadBlock {
			big++
		}
	}
	if big == 0 {
		t.Fatal("no payload was larger than a block")
	}
	for j, ne := range b.news {
		want, _ := Marshal(ins[b.idx[j]].Event)
		if !bytes.Equal(ne.Payload, want) {
			t.Fatalf("payload %d = %s, want %s", j, ne.Payload, want)
		}
		if cap(ne.Payload) != len(ne.Payload) {
			t.Fatalf("payload %d has room after it (cap %d, len %d): an append would write into the next one", j, cap(ne.Payload), len(ne.Payload))
		}
		i := b.idx[j]
		one := p.Prepare(context.Background(), alone[i:i+1])
		if !bytes.Equal(one.news[0].Payload, ne.Payload) {
			t.Fatalf("payload %d prepared alone = %s, in a request = %s", j, one.news[0].Payload, ne.Payload)
		}
	}
}

// A request of one event (the tag's) does not allocate a whole payload
// block: the block is sized to the events left.
func TestPrepareOneEventAllocatesLittle(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	site := &store.Site{Key: "s", DefaultRegion: "US"}
	p := &Pipeline{Now: func() time.Time { return now }}
	in := []Input{{Site: site, Path: "events[0]", Source: SourceBrowser}}
	per := sharedtest.BytesPerRun(50, func(int) {
		in[0].Event = &event.Event{EventName: "PageView", EventTime: event.Time(now.Unix()), EventID: "e-1",
			ActionSource: "website", EventSourceURL: "https://shop.example.com/x",
			UserData: event.UserData{ClientUserAgent: "Mozilla/5.0", ClientIPAddress: "203.0.113.7"}}
		if b := p.Prepare(context.Background(), in); len(b.news) != 1 {
			t.Fatalf("Prepare kept %d events, want 1: %+v", len(b.news), b.results)
		}
	})
	if per > payloadBlock/4 {
		t.Fatalf("Prepare of one event allocated %d bytes, want well under a payload block (%d)", per, payloadBlock)
	}
}

// With a store that seals payloads for its callers (store.PayloadSealer),
// Prepare seals each payload as soon as it is encoded: no plaintext copy
// of a request's payloads is kept until the commit. What the store keeps
// opens to Marshal of each prepared event.
func TestPreparePayloadsAreSealed(t *testing.T) {
	now := time.Now()
	db := storetest.OpenSQLite(t)
	site := &store.Site{Key: "s", Name: "S", APIKeyHash: "h", DefaultRegion: "US"}
	if err := db.CreateSite(t.Context(), site); err != nil {
		t.Fatal(err)
	}
	var ins []Input
	for j := range 120 {
		ins = append(ins, Input{Site: site, Path: fmt.Sprintf("data[%d]", j), Source: SourceServer, Event: &event.Event{
			EventName: "Lead", EventTime: event.Time(now.Unix()), EventID: fmt.Sprint("e-", j),
			ActionSource: "website", EventSourceURL: "https://shop.example.com/" + strings.Repeat("x", j*40),
			UserData: event.UserData{Em: event.List{fmt.Sprintf("p%d@example.com", j)}, ClientUserAgent: "Mozilla/5.0"}}})
	}
	p := &Pipeline{Store: db, Now: func() time.Time { return now }}
	b := p.Prepare(t.Context(), ins)
	if len(b.news) != len(ins) {
		t.Fatalf("Prepare kept %d events of %d: %+v", len(b.news), len(ins), b.results)
	}
	want := make(map[string][]byte)
	for j, ne := range b.news {
		if !ne.Sealed || bytes.Contains(ne.Payload, []byte(`"event_name"`)) {
			t.Fatalf("payload %d is not sealed: %.60q", j, ne.Payload)
		}
		want[ne.EventID], _ = Marshal(ins[b.idx[j]].Event)
	}
	if _, err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	items, err := db.Items(t.Context(), site.Key, "", len(ins))
	if err != nil || len(items) != len(ins) {
		t.Fatalf("Items = %d, %v", len(items), err)
	}
	for _, it := range items {
		if !bytes.Equal(it.Payload, want[it.EventID]) {
			t.Fatalf("stored payload of %s = %s, want %s", it.EventID, it.Payload, want[it.EventID])
		}
	}
}
