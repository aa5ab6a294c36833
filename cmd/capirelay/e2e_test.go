package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/sharedtest"
)

// TestMain lets the test binary act as the capirelay binary: a test starts
// it again with CAPIRELAY_TEST_MAIN=1 to get a real `serve` process it can
// kill -9, without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("CAPIRELAY_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// proc is a capirelay process started by a test.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
}

// syncBuffer is a log sink the relay's goroutines may share.
type syncBuffer = sharedtest.Buffer

func relayEnv(dataDir, graphURL string) []string {
	return append(os.Environ(), "CAPIRELAY_TEST_MAIN=1", "CAPIRELAY_DATA_DIR="+dataDir, "CAPIRELAY_GRAPH_URL="+graphURL,
		"CAPIRELAY_BATCH_LINGER=50ms", "CAPIRELAY_ADDR=127.0.0.1:0", "CAPIRELAY_LOG_LEVEL=info")
}

var addrRE = regexp.MustCompile(`msg="capirelay listening" addr=(\S+)`)

// startServe runs `capirelay serve` and waits until it listens.
func startServe(t *testing.T, env []string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve")
	cmd.Env = env
	p := &proc{cmd: cmd, stderr: &syncBuffer{}}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			if m := addrRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.addr = <-found:
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start: %s", p.stderr.String())
	}
	return p
}

// cli runs a capirelay subcommand in-process against env.
func cli(t *testing.T, env []string, args ...string) string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return m[k] }); err != nil {
		t.Fatalf("capirelay %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// addSite creates a site with the CLI before the relay's first start, as
// a deployment would: migrate creates the store, site add adds to it.
func addSite(t *testing.T, env []string, pixel, token string) (siteKey, apiKey string) {
	cli(t, env, "migrate")
	out := cli(t, env, "site", "add", "--name", "Shop", "--domain", "shop.example.com", "--pixel-id", pixel, "--access-token", token)
	var keys map[string]string
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("site add printed %q, want one JSON object with site_key and api_key", out)
	}
	return keys["site_key"], keys["api_key"]
}

func postEvents(addr, key string, events []map[string]any) (int, []byte, error) {
	body, _ := json.Marshal(map[string]any{"data": events})
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitAcked waits until at least n event ids are in acked (guarded by mu).
func waitAcked(t *testing.T, mu *sync.Mutex, acked map[string]bool, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := len(acked)
		mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acknowledged in 60 s, want %d", got, n)
		}
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestServeDeliversHashedEventsToGraph(t *testing.T) {
	graph := capitest.New()
	defer graph.Close()
	graph.SetToken("1234567890", "EAAB-secret-token")
	env := relayEnv(t.TempDir(), graph.URL)
	site, key := addSite(t, env, "1234567890", "EAAB-secret-token")
	cli(t, env, "site", "set", "--site", site, "--default-region", "us")
	p := startServe(t, env)

	fbc := "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
	ev := map[string]any{
		"event_name": "Purchase", "event_time": time.Now().Unix(), "event_id": "order-7781", "action_source": "website",
		"event_source_url": "https://shop.example.com/thanks",
		"user_data": map[string]any{"em": " John_Smith@Gmail.com ", "ph": "(650)555-1212", "fn": "Mary",
			"client_ip_address": "2001:db8::7", "client_user_agent": "Mozilla/5.0 (Macintosh)", "fbp": "fb.1.1596403881668.1116446470", "fbc": fbc},
		"custom_data": map[string]any{"value": 19.99, "currency": "usd"},
	}
	code, body, err := postEvents(p.addr, key, []map[string]any{ev})
	if err != nil || code != 200 {
		t.Fatalf("post: %d %s %v", code, body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(graph.Events("1234567890")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("event never reached the Graph API: %s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got struct {
		EventID  string `json:"event_id"`
		UserData struct {
			Em, Ph, Fn []string
			IP         string `json:"client_ip_address"`
			UA         string `json:"client_user_agent"`
			Fbp, Fbc   string
		} `json:"user_data"`
		CustomData map[string]any `json:"custom_data"`
	}
	if err := json.Unmarshal(graph.Events("1234567890")[0], &got); err != nil {
		t.Fatal(err)
	}
	ud := got.UserData
	if got.EventID != "order-7781" {
		t.Errorf("event_id = %q", got.EventID)
	}
	// spec §3.4 vectors
	if len(ud.Em) != 1 || ud.Em[0] != "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" {
		t.Errorf("em = %v", ud.Em)
	}
	if len(ud.Ph) != 1 || ud.Ph[0] != "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176" {
		t.Errorf("ph = %v", ud.Ph)
	}
	if len(ud.Fn) != 1 || ud.Fn[0] != sha("mary") {
		t.Errorf("fn = %v", ud.Fn)
	}
	if ud.IP != "2001:db8::7" || ud.UA != "Mozilla/5.0 (Macintosh)" || ud.Fbp != "fb.1.1596403881668.1116446470" || ud.Fbc != fbc {
		t.Errorf("pass-through fields changed: %+v", ud)
	}
	if got.CustomData["currency"] != "USD" {
		t.Errorf("currency = %v", got.CustomData["currency"])
	}
	for _, rq := range graph.Requests() {
		if strings.Contains(rq.RawQuery, "EAAB") {
			t.Errorf("token in a URL: %q", rq.RawQuery)
		}
		if rq.Method == "POST" && !strings.HasPrefix(rq.PartnerAgent, "capirelay-") {
			t.Errorf("partner_agent %q", rq.PartnerAgent)
		}
	}
	if strings.Contains(p.stderr.String(), "EAAB-secret-token") || strings.Contains(p.stderr.String(), "John_Smith") {
		t.Error("the log holds the token or raw personal data")
	}
	// The CLI never prints the token.
	if out := cli(t, env, "site", "list"); strings.Contains(out, "EAAB") {
		t.Errorf("site list printed the token: %s", out)
	}
}

func TestKill9UnderLoadLosesNoAcknowledgedEvent(t *testing.T) {
	graph := capitest.New()
	defer graph.Close()
	graph.SetLatency(5 * time.Millisecond)
	env := relayEnv(t.TempDir(), graph.URL)
	_, key := addSite(t, env, "10777", "tok")
	p := startServe(t, env)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				evs := make([]map[string]any, 50)
				ids := make([]string, len(evs))
				for i := range evs {
					ids[i] = fmt.Sprintf("w%d-%d-%d", w, n, i)
					evs[i] = map[string]any{"event_name": "Lead", "event_time": time.Now().Unix(), "event_id": ids[i],
						"action_source": "system_generated", "user_data": map[string]any{"em": ids[i] + "@example.com"}}
				}
				code, _, err := postEvents(p.addr, key, evs)
				if err != nil || code != 200 {
					return // the process died mid-request: not acknowledged
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	// Kill under load: once a good number of events are acknowledged, not
	// after a fixed time a slow machine may spend starting up.
	waitAcked(t, &mu, acked, 2000)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	cancel()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no event was acknowledged before the kill")
	}
	startServe(t, env)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := graph.EventsByID("10777")
		missing := 0
		for id := range acked {
			if len(got[id]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("%d acknowledged events, all delivered; %d distinct at the fake", n, len(got))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never delivered", missing, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSandboxTailPrintsPayloads(t *testing.T) {
	env := relayEnv(t.TempDir(), "http://127.0.0.1:1")
	cli(t, env, "migrate")
	out := cli(t, env, "site", "add", "--name", "Sandboxed", "--domain", "example.org")
	var keys map[string]string
	json.Unmarshal([]byte(out), &keys)
	p := startServe(t, env)
	code, body, err := postEvents(p.addr, keys["api_key"], []map[string]any{{"event_name": "Lead", "event_time": time.Now().Unix(),
		"event_id": "sb-1", "action_source": "system_generated", "user_data": map[string]any{"em": "a@example.org"}}})
	if err != nil || code != 200 {
		t.Fatalf("post: %d %s %v", code, body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tail := cli(t, env, "sandbox", "tail", "--site", keys["site_key"])
		if strings.Contains(tail, `"event_id":"sb-1"`) {
			if !strings.Contains(tail, sha("a@example.org")) || strings.Contains(tail, "a@example.org\"") {
				t.Fatalf("sandbox payload not hashed: %s", tail)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox never recorded the event: %q", tail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
