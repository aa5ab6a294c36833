package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"
	"time"

	"github.com/capirelay/capirelay/internal/pipeline"
)

// TestReadServerBody checks readServerBody against what it replaces,
// io.ReadAll of an http.MaxBytesReader, whatever Content-Length says.
func TestReadServerBody(t *testing.T) {
	small := bytes.Repeat([]byte("x"), 1000)
	exact := bytes.Repeat([]byte("y"), MaxServerBody)
	over := bytes.Repeat([]byte("z"), MaxServerBody+1)
	for _, tc := range []struct {
		name   string
		body   []byte
		length int64
		slow   bool // one byte per Read
	}{
		{"empty", nil, 0, false},
		{"announced", small, 1000, false},
		{"unknown length", small, -1, false},
		{"length too small", small, 10, false},
		{"length too large", small, 5000, false},
		{"one byte per read", small, 1000, true},
		{"at the limit", exact, MaxServerBody, false},
		{"over the limit", over, MaxServerBody + 1, false},
		{"over the limit, announced small", over, 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := func() *http.Request {
				var rd io.Reader = bytes.NewReader(tc.body)
				if tc.slow {
					rd = iotest.OneByteReader(rd)
				}
				r := httptest.NewRequest("POST", "/v1/events", rd)
				r.ContentLength = tc.length
				return r
			}
			want, wantErr := io.ReadAll(http.MaxBytesReader(nil, req().Body, MaxServerBody))
			got, release, err := readServerBody(req())
			release()
			var wantMBE, gotMBE *http.MaxBytesError
			if errors.As(wantErr, &wantMBE) != errors.As(err, &gotMBE) || (wantErr == nil) != (err == nil) {
				t.Fatalf("readServerBody error = %v, want %v", err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("readServerBody read %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestAppendResponse checks the hand-written Response encoding against
// encoding/json's, as writeJSON would write it.
func TestAppendResponse(t *testing.T) {
	for _, resp := range []*Response{
		{},
		{EventsReceived: 0, Results: []Result{}},
		{EventsReceived: 2, Results: []Result{{EventID: "a", Status: "accepted"}, {EventID: "b\"<é\u2028\x01\xff", Status: "duplicate"}}},
		{EventsReceived: 0, Results: []Result{{EventID: "", Status: "rejected", Error: "is required", Field: "data[0].event_name"},
			{EventID: "x", Status: "rejected", Error: "must be <a> & \"b\""}, {EventID: "y", Status: "rejected", Field: "f"}}},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(resp); err != nil {
			t.Fatal(err)
		}
		if got := appendResponse(nil, resp); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendResponse(%+v) = %s, want %s", resp, got, want.Bytes())
		}
	}
}

// FuzzAppendResponse checks appendResponse against encoding/json for
// arbitrary ids, statuses and errors.
func FuzzAppendResponse(f *testing.F) {
	f.Add(1, "a", "accepted", "", "", "b\"\\", "rejected", "is <bad>", "data[1].x")
	f.Fuzz(func(t *testing.T, n int, id1, st1, err1, f1, id2, st2, err2, f2 string) {
		resp := &Response{EventsReceived: n, Results: []Result{{id1, pipeline.Status(st1), err1, f1}, {id2, pipeline.Status(st2), err2, f2}}}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(resp); err != nil {
			t.Fatal(err)
		}
		if got := appendResponse(nil, resp); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendResponse(%+v) = %s, want %s", resp, got, want.Bytes())
		}
	})
}

// TestBigBodiesShareSlots: with every big-body slot taken, a body past
// bigBody waits (here until its request gives up) while small bodies pass;
// a freed slot lets it through, and release gives the slot back.
func TestBigBodiesShareSlots(t *testing.T) {
	for range cap(bigBodySlots) {
		bigBodySlots <- struct{}{}
	}
	held := cap(bigBodySlots)
	defer func() {
		for range held {
			<-bigBodySlots
		}
	}()
	big := bytes.Repeat([]byte("a"), bigBody+1)
	req := func(ctx context.Context, body []byte, announce bool) *http.Request {
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/events", bytes.NewReader(body))
		if !announce {
			r.ContentLength = -1 // chunked: the size shows only while reading
		}
		return r
	}
	for _, announce := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, release, err := readServerBody(req(ctx, big, announce))
		release()
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("big body (Content-Length announced %v) with no slot free: err = %v, want it to wait until the deadline", announce, err)
		}
	}
	small, release, err := readServerBody(req(context.Background(), []byte(`{"data":[]}`), true))
	release()
	if err != nil || len(small) != 11 {
		t.Fatalf("small body with no big-body slot free: %d bytes, %v", len(small), err)
	}
	<-bigBodySlots // free one
	held--
	got, release, err := readServerBody(req(context.Background(), big, true))
	if err != nil || len(got) != len(big) {
		t.Fatalf("big body with a slot free: %d bytes, %v", len(got), err)
	}
	if len(bigBodySlots) != cap(bigBodySlots) {
		t.Fatalf("the big body holds no slot while in use")
	}
	release()
	if len(bigBodySlots) != cap(bigBodySlots)-1 {
		t.Fatalf("release did not give the slot back")
	}
}
