package collect

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/metarules"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// setupServer is /v1/events on a real SQLite store with one site whose
// api key is "crk_test".
func setupServer(tb testing.TB) (*Server, *browserBundle) {
	tb.Helper()
	db := mustOpenStore(tb)
	s := &store.Site{Key: "shop", Name: "shop", PixelID: "1234567890", APIKeyHash: HashAPIKey("crk_test")}
	store.SiteDefaults(s)
	if err := db.CreateSite(tb.Context(), s); err != nil {
		tb.Fatal(err)
	}
	return &Server{Sites: db, Pipeline: pipeline.New(db)}, &browserBundle{db: db, site: s}
}

func serverEventJSON(extra string) string {
	return fmt.Sprintf(`{"event_name":"Lead","event_time":%d,"action_source":"email","user_data":{"em":"a@example.com"%s}`,
		time.Now().Unix(), extra)
}

// TestServerRefusesUnboundedOrInvalidInput: events over the decode limits
// or holding bytes that are not UTF-8 are refused as a whole request with
// the field named, and nothing is stored; a Purchase without value is
// refused whether or not it has custom_data, and so is an fbc or
// client_ip_address that is not one (Meta would get it unhashed).
func TestServerRefusesUnboundedOrInvalidInput(t *testing.T) {
	emails := make([]string, 40000)
	for i := range emails {
		emails[i] = fmt.Sprintf(`"user%d@example.com"`, i)
	}
	for _, c := range []struct {
		name, ctype, body string
		status            int
		field             string
	}{
		{"40k emails", "application/json", `{"data":[` + serverEventJSON(`,"ph":"1","em":[`+strings.Join(emails, ",")+`]}`) + `]}`, 400, "data[0].user_data.em"},
		{"custom_data not UTF-8", "application/json", `{"data":[` + serverEventJSON("},\"custom_data\":{\"name\":\"caf\xe9\"}") + `]}`, 400, "data[0].custom_data.name"},
		{"second event's key not UTF-8", "application/json", `{"data":[` + serverEventJSON(`}`) + `,` + serverEventJSON("},\"custom_data\":{\"\xff\":1}") + `]}`, 400, "data[1].custom_data"},
		{"user_data not UTF-8", "application/json", `{"data":[` + serverEventJSON(",\"fn\":\"J\xc3\"}") + `]}`, 400, "data[0].user_data.fn"},
		{"form data not UTF-8", "application/x-www-form-urlencoded", "data=" + url.QueryEscape(`[`+serverEventJSON("},\"custom_data\":{\"a\":\"\xff\"}")+`]`), 400, "data[0].custom_data.a"},
		{"form test_event_code not UTF-8", "application/x-www-form-urlencoded", "test_event_code=%ff&data=" + url.QueryEscape(`[`+serverEventJSON(`}`)+`]`), 400, "test_event_code"},
		{"fbc an address", "application/json", `{"data":[` + serverEventJSON(`,"fbc":"john@example.com"}`) + `]}`, 422, "data[0].user_data.fbc"},
		{"client_ip_address an address", "application/json", `{"data":[` + serverEventJSON(`,"client_ip_address":"john@example.com"}`) + `]}`, 422, "data[0].user_data.client_ip_address"},
		{"Purchase without custom_data", "application/json", `{"data":[` + strings.Replace(serverEventJSON(`}`), "Lead", "Purchase", 1) + `]}`, 422, "data[0].custom_data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, bb := setupServer(t)
			r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(c.body))
			r.Header.Set("Content-Type", c.ctype)
			r.Header.Set("Authorization", "Bearer crk_test")
			w := httptest.NewRecorder()
			srv.ServeEvents(w, r)
			var eb ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
				t.Fatalf("answer %d is not JSON: %s", w.Code, w.Body)
			}
			if w.Code != c.status || eb.Field != c.field {
				t.Fatalf("answer %d %+v, want %d naming %s", w.Code, eb, c.status, c.field)
			}
			if items := bb.items(t); len(items) != 0 {
				t.Errorf("stored %d items of a refused request", len(items))
			}
		})
	}
}

// TestLongEventIDEchoCapped: an event_id over metarules.MaxEventIDLen is
// refused, and the 422 repeats at most that many bytes of it, cut on a
// UTF-8 boundary.
func TestLongEventIDEchoCapped(t *testing.T) {
	for _, c := range []struct{ name, id, want string }{
		{"5000 ASCII characters", strings.Repeat("x", 5000), strings.Repeat("x", metarules.MaxEventIDLen)},
		// 199 bytes, then "é" (2 bytes) across the limit: it is left out whole.
		{"a rune across the limit", strings.Repeat("a", metarules.MaxEventIDLen-1) + strings.Repeat("é", 100), strings.Repeat("a", metarules.MaxEventIDLen-1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := setupServer(t)
			body := `{"data":[` + strings.Replace(serverEventJSON(`}`), `"event_name"`, `"event_id":"`+c.id+`","event_name"`, 1) + `]}`
			r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer crk_test")
			w := httptest.NewRecorder()
			srv.ServeEvents(w, r)
			var resp Response
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 422 || len(resp.Results) != 1 {
				t.Fatalf("answer %d %.300s: %v, want a 422 with one result", w.Code, w.Body, err)
			}
			got := resp.Results[0]
			if got.Status != pipeline.Rejected || got.Field != "data[0].event_id" {
				t.Fatalf("result %+v, want event_id refused", got)
			}
			if got.EventID != c.want || !utf8.ValidString(got.EventID) {
				t.Errorf("echoed event_id of %d bytes (%.20q…), want the first %d bytes", len(got.EventID), got.EventID, len(c.want))
			}
			if w.Body.Len() > 1000 {
				t.Errorf("answer of %d bytes for one event", w.Body.Len())
			}
		})
	}
}

// TestClientGoneIsNotAnError: a request whose client went away before its
// events were stored is answered 503 and logged at debug level, not as an
// error (every request in flight ends so when a client stops); a store
// failure of its own is still logged as an error, even when the client
// has gone too.
func TestClientGoneIsNotAnError(t *testing.T) {
	srv, _ := setupServer(t)
	var logs bytes.Buffer
	srv.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(`{"data":[`+serverEventJSON(`}`)+`]}`)).WithContext(gone)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer crk_test")
	w := httptest.NewRecorder()
	srv.ServeEvents(w, r)
	if w.Code != 503 {
		t.Fatalf("client gone: answer %d, want 503", w.Code)
	}
	if logs.Len() != 0 {
		t.Errorf("client gone: logged %q, want nothing at info level or above", logs.String())
	}
	failed := fmt.Errorf("%w: disk I/O error", pipeline.ErrStore)
	for _, ctx := range []context.Context{t.Context(), gone} {
		logs.Reset()
		logStoreFailure(ctx, srv.Logger, "store events", "shop", failed)
		if !strings.Contains(logs.String(), `level=ERROR msg="store events" site=shop`) {
			t.Errorf("store failure: logged %q, want an error", logs.String())
		}
	}
}

// TestServerRefusesCompressedBodies: a compressed body is refused for its
// Content-Encoding, not as bytes that are not UTF-8.
func TestServerRefusesCompressedBodies(t *testing.T) {
	srv, bb := setupServer(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"data":[` + serverEventJSON(`}`) + `]}`))
	zw.Close()
	r := httptest.NewRequest("POST", "/v1/events", &gz)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", "gzip")
	r.Header.Set("Authorization", "Bearer crk_test")
	w := httptest.NewRecorder()
	srv.ServeEvents(w, r)
	var eb ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code != 415 || eb.Field != "Content-Encoding" {
		t.Errorf("answer %d %s, want 415 naming Content-Encoding", w.Code, w.Body)
	}
	if items := bb.items(t); len(items) != 0 {
		t.Errorf("stored %d items", len(items))
	}
}
