package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/collect"
)

// sdkRun is one scenario as compat/node-sdk/drive.js reports it.
type sdkRun struct {
	Name      string            `json:"name"`
	Params    map[string]string `json:"params"`
	Sent      []map[string]any  `json:"sent"`
	BodyBytes int               `json:"bodyBytes"`
	Response  *struct {
		EventsReceived int    `json:"events_received"`
		FbtraceID      string `json:"fbtrace_id"`
	} `json:"response"`
	Error *struct {
		Name   string         `json:"name"`
		Status int            `json:"status"`
		Graph  map[string]any `json:"graph"`
	} `json:"error"`
}

// needNode skips, or fails under CI=true, when the Node SDK cannot run.
func needNode(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (required in CI)", why)
	}
	t.Skip(why)
}

// TestNodeSDK drives Meta's official Node SDK (compat/node-sdk, pinned
// facebook-nodejs-business-sdk 24.0.1), with only its Graph base URL
// pointed at a real `capirelay serve`, which delivers to a fake Graph API.
// Each scenario must behave as it would against Meta, and each event the
// fake Graph receives must equal, field by field, what the SDK sent.
func TestNodeSDK(t *testing.T) {
	dir := filepath.Join("..", "..", "compat", "node-sdk")
	node, err := exec.LookPath("node")
	if err != nil {
		needNode(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "facebook-nodejs-business-sdk", "package.json")); err != nil {
		needNode(t, "the Node SDK is not installed: run `npm ci` in compat/node-sdk")
	}
	const pixel, token = "987654321", "EAAB-sdk-token"
	graph := capitest.New()
	defer graph.Close()
	graph.SetToken(pixel, token)
	env := relayEnv(t.TempDir(), graph.URL)
	_, key := addSite(t, env, pixel, token)
	p := startServe(t, env)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drive.js", "http://"+p.addr, pixel, key)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drive.js: %v\n%s\nrelay log:\n%s", err, stderr.String(), p.stderr.String())
	}
	runs := map[string]*sdkRun{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r sdkRun
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("drive.js printed %.200q: %v", sc.Text(), err)
		}
		runs[r.Name] = &r
	}
	run := func(name string) *sdkRun {
		r := runs[name]
		if r == nil {
			t.Fatalf("drive.js did not report %q", name)
		}
		return r
	}
	accepted := func(r *sdkRun) {
		t.Helper()
		if r.Error != nil || r.Response == nil || r.Response.EventsReceived != len(r.Sent) || r.Response.FbtraceID == "" {
			t.Errorf("%s: got %+v %+v, want events_received %d and an fbtrace_id", r.Name, r.Response, r.Error, len(r.Sent))
		}
	}
	refused := func(r *sdkRun, code, subcode int, msgHas string) {
		t.Helper()
		if r.Error == nil || r.Error.Name != "FacebookRequestError" || r.Error.Status != 400 {
			t.Errorf("%s: got %+v %+v, want FacebookRequestError status 400", r.Name, r.Response, r.Error)
			return
		}
		g := r.Error.Graph
		msg, _ := g["error_user_msg"].(string)
		if g["code"] != float64(code) || g["error_subcode"] != float64(subcode) || !strings.Contains(msg, msgHas) || g["fbtrace_id"] == "" {
			t.Errorf("%s: Graph error %v, want code %d/%d and a reason naming %q", r.Name, g, code, subcode, msgHas)
		}
	}

	web, app, store, batch := run("website purchase, every user_data field"), run("app event with AppData and ExtendedDeviceInfo"),
		run("physical_store sale 20 days old"), run("batch of 1000")
	test, wrong, stale := run("test event code"), run("wrong key"), run("stale website event")
	for _, r := range []*sdkRun{web, app, store, batch, test} {
		accepted(r)
	}
	refused(wrong, 190, 0, "")
	refused(stale, 100, 2804003, "data[0].event_time")
	t.Logf("1000 SDK-built purchases: %d bytes of JSON; one with every user_data field: %d bytes (body cap %d)",
		batch.BodyBytes, web.BodyBytes, collect.MaxServerBody)
	// The body cap must hold 1000 events as the SDK builds them, even with
	// every user_data field set, with room to spare for custom_data.
	if web.BodyBytes*1000 > collect.MaxServerBody/2 {
		t.Errorf("1000 SDK-built events with every field would take %d bytes, more than half the %d-byte body cap",
			web.BodyBytes*1000, collect.MaxServerBody)
	}

	want := 0
	for _, r := range []*sdkRun{web, app, store, batch, test} {
		want += len(r.Sent)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(graph.Events(pixel)) < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := graph.EventsByID(pixel)
	if len(got) != want {
		t.Fatalf("the fake Graph got %d events, want %d\nrelay log:\n%s", len(got), want, p.stderr.String())
	}
	for _, r := range []*sdkRun{web, app, store, batch, test} {
		for _, sent := range r.Sent {
			id, _ := sent["event_id"].(string)
			recv := got[id]
			if len(recv) != 1 {
				t.Errorf("%s: event %s reached Meta %d times", r.Name, id, len(recv))
				continue
			}
			compareEvent(t, r.Name+" "+id, sent, recv[0])
		}
	}
	for _, id := range []string{"wrong-1", "stale-1"} {
		if len(got[id]) != 0 {
			t.Errorf("refused event %s reached Meta", id)
		}
	}

	// The request-level parameters: the caller's own partner_agent,
	// namespace_id, upload_*, and test_event_code.
	reqOf := func(id string) *capitest.Request {
		for _, rq := range graph.Requests() {
			for _, ev := range rq.Events {
				if bytes.Contains(ev, []byte(`"event_id":"`+id+`"`)) {
					return &rq
				}
			}
		}
		t.Fatalf("no request to Meta carried %s", id)
		return nil
	}
	if rq := reqOf("web-1"); rq.PartnerAgent != web.Params["partner_agent"] || rq.NamespaceID != web.Params["namespace_id"] ||
		rq.UploadID != web.Params["upload_id"] || rq.UploadTag != web.Params["upload_tag"] || rq.UploadSource != web.Params["upload_source"] {
		t.Errorf("Meta got partner_agent %q namespace_id %q upload %q/%q/%q, the SDK sent %v",
			rq.PartnerAgent, rq.NamespaceID, rq.UploadID, rq.UploadTag, rq.UploadSource, web.Params)
	}
	if rq := reqOf("test-1"); rq.TestEventCode != "TEST4242" {
		t.Errorf("test event went to Meta with test_event_code %q, want TEST4242", rq.TestEventCode)
	}
	if rq := reqOf("store-1"); rq.TestEventCode != "" {
		t.Errorf("a production event went to Meta with test_event_code %q", rq.TestEventCode)
	}
}

// compareEvent reports each field in which what Meta received differs from
// what the SDK sent.
func compareEvent(t *testing.T, name string, sent map[string]any, received json.RawMessage) {
	t.Helper()
	var recv map[string]any
	if err := json.Unmarshal(received, &recv); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Round-trip what the SDK sent through JSON, as Meta would read it.
	b, _ := json.Marshal(sent)
	var want map[string]any
	json.Unmarshal(b, &want)
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range recv {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		w, g := want[k], recv[k]
		if wm, ok := w.(map[string]any); ok && k == "user_data" {
			gm, _ := g.(map[string]any)
			for f := range union(wm, gm) {
				if !reflect.DeepEqual(wm[f], gm[f]) {
					diffs = append(diffs, fmt.Sprintf("user_data.%s: sent %v, Meta got %v", f, wm[f], gm[f]))
				}
			}
			continue
		}
		if !reflect.DeepEqual(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s: sent %v, Meta got %v", k, w, g))
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Errorf("%s: %s", name, d)
	}
}

func union(a, b map[string]any) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}
