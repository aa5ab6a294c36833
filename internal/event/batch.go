package event

import (
	"unsafe"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// DecodeBatch is the fast path for a whole JSON request body whose data is
// an array of events: it reads the envelope as DecodeEnvelope does and each
// event as Decode does, in one pass over body. The usual path reads the
// same bytes three times (the envelope checks data as JSON, the array is
// split into elements, each element is decoded) and copies every string of
// every event on its own; here the events' strings and their raw fields
// (custom_data …) are cut from body itself, which the caller must never
// modify afterwards: a string kept after the request (a cache's key, an
// id) would change with it. A copy of body for the strings cost as much
// as reading the body.
//
// It returns false, having decided nothing, for any body it cannot read
// exactly as that path would, and for the ones that path refuses: data not
// an array, an empty array, more than MaxPerRequest events, or any event
// Decode's own fast path leaves to encoding/json or Decode refuses. The caller then takes the
// usual path, which gives the same errors as before. FuzzDecodeBatch (in
// collect, beside that path) checks the agreement.
func DecodeBatch(body []byte) (Envelope, []*Event, bool) {
	var env Envelope
	var evs []*Event
	d := fastDecoder{Cursor: jsonscan.Cursor{B: body, S: unsafe.String(unsafe.SliceData(body), len(body))}, alias: true}
	hasData, ok := d.envelope(&env, func() bool {
		if d.Peek() != '[' {
			return false
		}
		var ok bool
		evs, ok = d.events()
		return ok
	})
	if !ok || !hasData {
		return Envelope{}, nil, false
	}
	return env, evs, true
}

// events reads the array of events at d.I ('['): between 1 and
// MaxPerRequest objects, each one as decodeFast reads it.
func (d *fastDecoder) events() ([]*Event, bool) {
	evs := make([]*Event, 0, 128)
	// The events are allocated a few at a time, in blocks: the first of
	// 4, the next ones sized by the bytes left at the size of the events
	// read so far, so that 100 events cost 3 allocations, not 100, and
	// few events go unused (blocks doubling in size left 28 of 128 unused
	// for 100 events: a tenth of the bytes the relay allocated).
	var block []fastEvent
	start := d.I
	ok := d.Array(func() bool {
		if d.Peek() != '{' || len(evs) == MaxPerRequest {
			return false
		}
		if len(block) == 0 {
			n := 4
			if read := d.I - start; len(evs) > 0 && read > 0 {
				n = (len(d.B)-d.I)*len(evs)/read + 1
			}
			block = make([]fastEvent, min(max(n, 4), 64, MaxPerRequest-len(evs)))
		}
		d.fe, block = &block[0], block[1:]
		if !d.event() || d.fe.limits("") != nil {
			return false // Decode gives the error
		}
		evs = append(evs, &d.fe.ev)
		return true
	})
	if !ok || len(evs) == 0 {
		return nil, false
	}
	return evs, true
}
