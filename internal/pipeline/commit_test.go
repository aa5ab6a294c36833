package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/store"
)

// orderStore records what the pipeline still held when Enqueue ran.
type orderStore struct {
	store.Outbox
	b        *Prepared
	learnt   *int
	atCommit struct {
		learnt  int
		insHeld bool
	}
}

func (s *orderStore) Enqueue(_ context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	s.atCommit.learnt, s.atCommit.insHeld = *s.learnt, s.b.ins != nil
	out := make([]store.EnqueueResult, len(evs))
	for i := range out {
		out[i] = store.EnqueueResult{Status: store.Accepted, ID: int64(i + 1)}
		if i == 1 {
			out[i].Status = store.Duplicate
		}
	}
	return out, nil
}

type countingObserver struct {
	learnt   int
	recorded []string
}

func (o *countingObserver) Learn(in *Input) func(context.Context) {
	o.learnt++
	id := in.Event.EventID
	return func(context.Context) { o.recorded = append(o.recorded, id) }
}

// Commit learns from the events before it waits for the store, lets the
// decoded inputs go meanwhile, and records what it learnt only for the
// accepted ones.
func TestCommitLearnsBeforeTheWait(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	site := &store.Site{Key: "s"}
	var ins []Input
	for j := range 3 {
		ins = append(ins, Input{Site: site, Source: SourceServer, Path: fmt.Sprintf("data[%d]", j), Event: &event.Event{
			EventName: "Lead", EventTime: event.Time(now.Unix()), EventID: fmt.Sprint("e", j), ActionSource: "website",
			EventSourceURL: "https://shop.example.com/", UserData: event.UserData{Em: event.List{"a@example.com"}, ClientUserAgent: "UA"}}})
	}
	obs := &countingObserver{}
	st := &orderStore{learnt: &obs.learnt}
	p := &Pipeline{Store: st, Observer: obs, Now: func() time.Time { return now }}
	b := p.Prepare(context.Background(), ins)
	st.b = b
	res, err := b.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.atCommit.learnt != 3 || st.atCommit.insHeld {
		t.Errorf("at Enqueue: learnt from %d events, inputs still held %v; want 3 and false", st.atCommit.learnt, st.atCommit.insHeld)
	}
	if fmt.Sprint(obs.recorded) != "[e0 e2]" {
		t.Errorf("recorded %v, want the accepted e0 and e2", obs.recorded)
	}
	if res[1].Status != Duplicate {
		t.Errorf("results %+v", res)
	}
}

// The results' event ids are copies: an id cut from the request's body
// would keep the body alive as long as the results are held.
func TestResultIDsDoNotHoldTheBody(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"data":[` +
		`{"event_name":"Purchase","event_time":1760000000,"event_id":"first-id","action_source":"website","event_source_url":"https://shop.example.com/","user_data":{"em":["a@example.com"],"client_user_agent":"UA"}},` +
		`{"event_name":"Purchase","event_time":1760000000,"event_id":"second-id","action_source":"website","event_source_url":"https://shop.example.com/","user_data":{"em":["b@example.com"],"client_user_agent":"UA"}}]}`)
	_, evs, ok := event.DecodeBatch(body)
	if !ok || len(evs) != 2 {
		t.Fatalf("DecodeBatch = %d events, %v", len(evs), ok)
	}
	site := &store.Site{Key: "s"}
	ins := make([]Input, len(evs))
	for i, ev := range evs {
		ins[i] = Input{Site: site, Event: ev, Source: SourceServer, Path: fmt.Sprintf("data[%d]", i)}
	}
	p := &Pipeline{Now: func() time.Time { return now }}
	b := p.Prepare(context.Background(), ins)
	for i, r := range b.results {
		if r.EventID != evs[i].EventID {
			t.Fatalf("result %d id %q, want %q", i, r.EventID, evs[i].EventID)
		}
		if unsafe.StringData(r.EventID) == unsafe.StringData(evs[i].EventID) {
			t.Errorf("result %d's event id shares the decoded event's bytes (and so its body)", i)
		}
	}
}
