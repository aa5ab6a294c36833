package collect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/pipeline"
)

// TestServerWorkBoundsRequests: while the pipeline's Work has no free
// place, a request of /v1/events or of the Graph alias waits after reading
// its body and stores nothing; it goes on once a place is free. One whose
// client gives up while waiting is answered 503 and stores nothing.
func TestServerWorkBoundsRequests(t *testing.T) {
	srv, bb := setupServer(t)
	srv.Pipeline.Work = pipeline.NewGate(1)
	if err := srv.Pipeline.Work.Enter(t.Context(), "another site"); err != nil {
		t.Fatal(err)
	}
	send := func(ctx context.Context, graph bool, id string) *httptest.ResponseRecorder {
		ev := strings.Replace(serverEventJSON(`}`), `"event_name"`, `"event_id":"`+id+`","event_name"`, 1)
		w := httptest.NewRecorder()
		if graph {
			r := httptest.NewRequestWithContext(ctx, "POST", "/v20.0/1234567890/events", strings.NewReader(`{"access_token":"crk_test","data":[`+ev+`]}`))
			r.Header.Set("Content-Type", "application/json")
			srv.ServeGraph(w, r)
			return w
		}
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/events", strings.NewReader(`{"data":[`+ev+`]}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer crk_test")
		srv.ServeEvents(w, r)
		return w
	}

	gone, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if w := send(gone, false, "gave-up"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("client gave up waiting: answer %d %s, want 503", w.Code, w.Body)
	}

	answers := make(chan *httptest.ResponseRecorder, 2)
	go func() { answers <- send(t.Context(), false, "server") }()
	go func() { answers <- send(t.Context(), true, "graph") }()
	select {
	case w := <-answers:
		t.Fatalf("answered %d %s while Work was full", w.Code, w.Body)
	case <-time.After(200 * time.Millisecond):
	}
	if items := bb.items(t); len(items) != 0 {
		t.Fatalf("stored %d items while Work was full", len(items))
	}
	srv.Pipeline.Work.Leave()
	for range 2 {
		if w := <-answers; w.Code != http.StatusOK {
			t.Fatalf("after a place was freed: answer %d %s", w.Code, w.Body)
		}
	}
	got := map[string]bool{}
	for _, it := range bb.items(t) {
		got[it.EventID] = true
	}
	if len(got) != 2 || !got["server"] || !got["graph"] {
		t.Errorf("stored %v, want the two requests that waited (and not the one that gave up)", got)
	}
}
