package collect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/internal/event"
)

// slowBody reads a JSON /v1/events body the way the handler did before
// event.DecodeBatch: encoding/json for the envelope, then decodeData.
func slowBody(body []byte) (*request, []*event.Event, error) {
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, err
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("trailing data")
	}
	evs, err := decodeData(req.Data)
	return &req, evs, err
}

var batchSeeds = []string{
	`{"data":[{"event_name":"Purchase","event_time":1760000000,"event_id":"a","user_data":{"em":"a@b.co","ph":["1","2"]},"custom_data":{"value":1}}]}`,
	` { "test_event_code" : "TEST1", "data" : [ {} , {"event_id":"x\u00e9\n"} ] , "partner_agent":"p" } ` + "\n",
	`{"data":[{"event_name":"a"}],"access_token":"crk_x","namespace_id":"n","upload_id":"u","upload_tag":"t","upload_source":"s"}`,
	`{"data":[]}`,
	`{"data":"[{}]"}`,
	`{"data":null}`,
	`{"data":[{}],"data":[{}]}`,
	`{"data":[{"event_name":7}]}`,
	`{"data":[{},]}`,
	`{"data":[{}]}{}`,
	`{"data":[{}] , "other":1}`,
	`{"data":[{"custom_data":{"a":[1,{"b":"\ud83d\ude00"}]},"user_data":{"em":"` + "\xff" + `"}}]}`,
	`{"Data":[{}]}`,
	`[{"event_name":"a"}]`,
}

// FuzzDecodeBatch checks event.DecodeBatch against the path it shortcuts:
// whenever it takes a body, encoding/json and decodeData take it too and
// give the same envelope and the same events.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(loadgen.ServerBody("fuzz-000-000000000000", 3))
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, evs, ok := event.DecodeBatch(body)
		if !ok {
			return
		}
		req, want, err := slowBody(body)
		if err != nil {
			t.Fatalf("DecodeBatch(%q) took a body the slow path refuses: %v", body, err)
		}
		if got := request(env); !reflect.DeepEqual(&got, req) {
			t.Fatalf("DecodeBatch(%q) envelope = %+v, want %+v", body, got, *req)
		}
		if !reflect.DeepEqual(evs, want) {
			t.Fatalf("DecodeBatch(%q) events differ from decodeData's:\n got %+v\nwant %+v", body, evs, want)
		}
	})
}

// TestDecodeBatchTakesTheUsualBody makes sure the fast path is the one
// the benchmark's and real senders' bodies take, and that the handler
// falls back for what it leaves.
func TestDecodeBatchTakesTheUsualBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		fast bool
	}{
		{"load body", string(loadgen.ServerBody("t-000-000000000000", 100)), true},
		{"seed", batchSeeds[0], true},
		{"white space and top-level fields", batchSeeds[1], true},
		{"empty data", `{"data":[]}`, false},
		{"data as a string", `{"data":"[{}]"}`, false},
		{"too many events", `{"data":[` + strings.Repeat(`{},`, event.MaxPerRequest) + `{}]}`, false},
		{"an event the fast path leaves", `{"data":[{},{"event_name":7}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, evs, ok := event.DecodeBatch([]byte(tc.body))
			if ok != tc.fast {
				t.Fatalf("DecodeBatch ok = %v, want %v", ok, tc.fast)
			}
			r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			_, pevs, err := parseRequest(r, []byte(tc.body))
			if err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			if (pevs != nil) != tc.fast || len(pevs) != len(evs) {
				t.Fatalf("parseRequest gave %d events (fast %v), want fast %v", len(pevs), pevs != nil, tc.fast)
			}
		})
	}
}
