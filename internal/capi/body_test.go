package capi

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// A request body the transport has closed is used again by a later
// request, after garbage collections too: serve collects several times a
// second under its memory limit, which emptied the sync.Pool this was,
// and a megabyte body was allocated again for 4 batches in 10.
func TestRequestBodiesAreReused(t *testing.T) {
	ev := json.RawMessage(`{"event_name":"Purchase","custom_data":{"note":"` + strings.Repeat("x", 900) + `"}}`)
	req := &Request{Data: make([]json.RawMessage, MaxEventsPerRequest), AccessToken: "EAAtoken"}
	for i := range req.Data {
		req.Data[i] = ev
	}
	first, err := encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	arr := &(*first.buf)[:1][0]
	first.Close()
	first.Close() // a second close puts nothing back
	runtime.GC()
	runtime.GC()
	again, err := encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if &(*again.buf)[:1][0] != arr {
		t.Error("the closed body's buffer was not used again after two collections")
	}
	other, err := encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if &(*other.buf)[:1][0] == arr {
		t.Error("two bodies in use share a buffer")
	}
	// Bodies larger than maxPooledBuf are not kept.
	big := &Request{Data: []json.RawMessage{json.RawMessage(`{"x":"` + strings.Repeat("y", maxPooledBuf) + `"}`)}}
	b, err := encodeRequest(big)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for range cap(freeBodies) + 1 {
		select {
		case bp := <-freeBodies:
			if cap(*bp) > maxPooledBuf {
				t.Errorf("a body of %d bytes was kept", cap(*bp))
			}
		default:
		}
	}
	again.Close()
	other.Close()
}
