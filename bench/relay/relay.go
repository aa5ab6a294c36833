// Package relay starts a capirelay relay for benchmarks: either in this
// process (app.New on a temporary data directory) or as a `capirelay serve`
// subprocess built with `go build`, whose memory can be read from /proc.
// Both deliver to a Sink, a minimal local Graph API that accepts every
// batch, so dispatch runs during the load as it would in production.
package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sitecfg"
)

// Site identities used by the benchmarks.
const (
	PixelID     = "1234567890"
	AccessToken = "bench-token"
	Domain      = "shop.example.com"
)

// Sink is a local Graph API that accepts every batch and counts events.
type Sink struct {
	URL    string
	Events atomic.Int64
	srv    *http.Server
	ln     net.Listener
}

// NewSink listens on a loopback port.
func NewSink() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{URL: "http://" + ln.Addr().String() + "/graph", ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	// Its goroutines carry the label bench=sink, so a CPU profile of a
	// relay in this process can leave the sink out.
	pprof.Do(context.Background(), pprof.Labels("bench", "sink"), func(context.Context) { go s.srv.Serve(ln) })
	return s, nil
}

var eventNameKey = []byte(`"event_name"`)

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	// Counted as it is read, in a buffer of the sink's own: a batch is
	// about a megabyte, and reading each whole made the sink a tenth of
	// the bytes allocated in the load generator's process, whose CPUs the
	// relay shares.
	n, err := countKey(io.LimitReader(r.Body, 64<<20), eventNameKey)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.Events.Add(int64(n))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"events_received":%d,"messages":[],"fbtrace_id":"bench"}`, n)
}

// readBufs are countKey's buffers.
var readBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// countKey counts the occurrences of key in what r reads: bytes.Count of
// the whole, one buffer at a time. The last len(key)-1 bytes of a buffer
// are carried to the front of the next, so an occurrence across a read's
// edge is counted once.
func countKey(r io.Reader, key []byte) (int, error) {
	buf := readBufs.Get().(*[64 << 10]byte)
	defer readBufs.Put(buf)
	n, kept := 0, 0
	for {
		m, err := r.Read(buf[kept:])
		if m > 0 {
			end := kept + m
			n += bytes.Count(buf[:end], key)
			kept = min(len(key)-1, end)
			copy(buf[:kept], buf[end-kept:end])
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Close stops the sink.
func (s *Sink) Close() { s.srv.Close() }

// Relay is a running relay under test.
type Relay struct {
	URL     string // base URL
	SiteKey string
	APIKey  string
	Pid     int // the relay's process (this one when in-process)
	InProc  bool
	Log     *syncBuffer // subprocess stderr

	app     *app.App
	cmd     *exec.Cmd
	dataDir string
	cleanup []func()
}

// Options shape a relay.
type Options struct {
	DataDir  string // default: a new temporary directory, removed by Close
	GraphURL string // the sink's URL
	Linger   time.Duration
	// SiteSet, if any, are `capirelay site set` flags applied to the
	// bench site before serve starts (e.g. --identity off); a binary
	// that refuses them fails StartProcess with a *SiteSetError.
	SiteSet []string
	// Identity, if set, is an in-process relay's bench site's identity
	// mode (full, visitor or off); a process relay takes SiteSet.
	Identity string
	// DatabaseURL (postgres://…) and SecretKey (base64 of 32 bytes) make
	// several relays share one PostgreSQL; default: SQLite in DataDir.
	DatabaseURL, SecretKey string
	// Keys, if set, are the bench site's, already created in the shared
	// database by another node: no `site add`.
	Keys *Keys
	// AdminPasswordHash, if set (admin.HashPassword), is stored as the
	// dashboard password of an in-process relay, so logins cost what they
	// cost in production (PBKDF2), unlike CAPIRELAY_ADMIN_PASSWORD.
	AdminPasswordHash string
}

// Keys are the bench site's keys.
type Keys struct {
	SiteKey string `json:"site_key"`
	APIKey  string `json:"api_key"`
}

// SiteSetError is `capirelay site set` refusing Options.SiteSet: the
// binary does not have that setting (yet).
type SiteSetError struct {
	Args   []string
	Output string
}

// Error names the arguments and the CLI's own message: its last line,
// after any usage text.
func (e *SiteSetError) Error() string {
	lines := strings.Split(strings.TrimSpace(e.Output), "\n")
	return fmt.Sprintf("capirelay site set %s: %s", strings.Join(e.Args, " "), lines[len(lines)-1])
}

func (o *Options) dataDir() (string, func(), error) {
	if o.DataDir != "" {
		return o.DataDir, func() {}, nil
	}
	d, err := os.MkdirTemp("", "capirelay-bench-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// StartInProcess builds a relay with app.New and serves it on a loopback
// port. Its logs are discarded below warnings.
func StartInProcess(ctx context.Context, o Options) (*Relay, error) {
	dir, rm, err := o.dataDir()
	if err != nil {
		return nil, err
	}
	r := &Relay{InProc: true, Pid: os.Getpid(), dataDir: dir, cleanup: []func(){rm}}
	cfg := config.Config{DataDir: dir, GraphURL: o.GraphURL, Demo: false, BatchLinger: o.Linger,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Addr: "127.0.0.1:0"}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		rm()
		return nil, err
	}
	r.app = a
	u := sitecfg.Update{Name: new("bench"), Domains: &[]string{Domain}, PixelID: new(PixelID), AccessToken: new(AccessToken)}
	if o.Identity != "" {
		u.Identity = new(o.Identity)
	}
	site, key, err := app.CreateSite(ctx, a.Store, u)
	if err != nil {
		a.Shutdown(context.Background())
		rm()
		return nil, err
	}
	r.SiteKey, r.APIKey = site.Key, key
	if o.AdminPasswordHash != "" {
		if err := a.Store.SetAdminPasswordHash(ctx, o.AdminPasswordHash); err != nil {
			a.Shutdown(context.Background())
			rm()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Shutdown(context.Background())
		rm()
		return nil, err
	}
	a.Start(context.Background())
	go a.Serve(ln)
	r.URL = "http://" + ln.Addr().String()
	return r, waitReady(ctx, r.URL)
}

// AddSite adds another site on Domain with the bench pixel to an
// in-process relay (the attack load's victim) and returns its keys.
func (r *Relay) AddSite(ctx context.Context, name string) (*Keys, error) {
	if r.app == nil {
		return nil, errors.New("AddSite needs an in-process relay")
	}
	site, key, err := app.CreateSite(ctx, r.app.Store, sitecfg.Update{Name: new(name), Domains: &[]string{Domain}, PixelID: new(PixelID), AccessToken: new(AccessToken)})
	if err != nil {
		return nil, err
	}
	return &Keys{SiteKey: site.Key, APIKey: key}, nil
}

// Build compiles ./cmd/capirelay (from the module root moduleDir) into dir
// and returns the binary's path.
func Build(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "capirelay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/capirelay")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/capirelay: %w\n%s", err, out)
	}
	return bin, nil
}

var addrRE = regexp.MustCompile(`msg="capirelay listening" addr=(\S+)`)

// StartProcess creates the bench site with `capirelay site add` and runs
// `capirelay serve` on a loopback port.
func StartProcess(ctx context.Context, bin string, o Options) (*Relay, error) {
	dir, rm, err := o.dataDir()
	if err != nil {
		return nil, err
	}
	r := &Relay{dataDir: dir, cleanup: []func(){rm}, Log: &syncBuffer{}}
	linger := o.Linger
	if linger == 0 {
		linger = config.DefaultBatchLinger
	}
	env := append(os.Environ(), "CAPIRELAY_DATA_DIR="+dir, "CAPIRELAY_GRAPH_URL="+o.GraphURL, "CAPIRELAY_ADDR=127.0.0.1:0",
		"CAPIRELAY_DEMO=false", "CAPIRELAY_LOG_LEVEL=info", "CAPIRELAY_TRUSTED_PROXIES=127.0.0.0/8",
		"CAPIRELAY_BATCH_LINGER="+linger.String())
	if o.DatabaseURL != "" {
		env = append(env, "CAPIRELAY_DATABASE_URL="+o.DatabaseURL, "CAPIRELAY_SECRET_KEY="+o.SecretKey)
	}
	keys, err := siteKeys(ctx, bin, env, o)
	if err != nil {
		rm()
		return nil, err
	}
	r.SiteKey, r.APIKey = keys.SiteKey, keys.APIKey

	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		rm()
		return nil, err
	}
	r.cmd = cmd
	r.Pid = cmd.Process.Pid
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			r.Log.Write([]byte(line + "\n"))
			if m := addrRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		r.URL = "http://" + addr
	case <-time.After(30 * time.Second):
		r.Close()
		return nil, fmt.Errorf("capirelay serve did not start: %s", r.Log.String())
	}
	return r, waitReady(ctx, r.URL)
}

// siteKeys creates the bench site with `capirelay site add`, unless
// o.Keys names one, and applies o.SiteSet to it. `capirelay migrate`
// creates the store first: site add adds only to an existing one.
func siteKeys(ctx context.Context, bin string, env []string, o Options) (*Keys, error) {
	if o.Keys != nil {
		return o.Keys, nil
	}
	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("capirelay migrate: %w: %s", err, out)
	}
	add := exec.CommandContext(ctx, bin, "site", "add", "--name", "bench", "--domain", Domain, "--pixel-id", PixelID, "--access-token", AccessToken)
	add.Env = env
	out, err := add.Output()
	if err != nil {
		return nil, fmt.Errorf("capirelay site add: %w", err)
	}
	var keys Keys
	if err := json.Unmarshal(out, &keys); err != nil {
		return nil, fmt.Errorf("capirelay site add printed %q: %w", out, err)
	}
	if len(o.SiteSet) > 0 {
		set := exec.CommandContext(ctx, bin, append([]string{"site", "set", "--site", keys.SiteKey}, o.SiteSet...)...)
		set.Env = env
		if out, err := set.CombinedOutput(); err != nil {
			return nil, &SiteSetError{Args: o.SiteSet, Output: string(out)}
		}
	}
	return &keys, nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("relay at %s not ready: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the relay (SIGTERM for a subprocess, then SIGKILL after 30 s)
// and removes a temporary data directory.
func (r *Relay) Close() error {
	var err error
	if r.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = r.app.Shutdown(ctx)
		cancel()
	}
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- r.cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
			err = errors.Join(errors.New("relay did not stop within 30s"), <-done)
		}
	}
	for _, f := range r.cleanup {
		f()
	}
	return err
}

// Memory reads the relay's resident set (VmRSS) and its peak (VmHWM) from
// /proc/PID/status, in bytes.
func (r *Relay) Memory() (rss, peak int64, err error) {
	return ProcMemory(r.Pid)
}

// ProcCPU is the CPU time, user and system, that pid has used so far.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid …": comm may hold spaces; utime and stime
	// are fields 14 and 15, i.e. the 12th and 13th after comm.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcMemory reads VmRSS and VmHWM of pid, in bytes.
func ProcMemory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			peak = n << 10
		}
	}
	return rss, peak, nil
}

// syncBuffer keeps the last maxLog bytes written, for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const maxLog = 1 << 20

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len()+len(p) > maxLog {
		keep := append([]byte(nil), s.b.Bytes()[s.b.Len()/2:]...)
		s.b.Reset()
		s.b.Write(keep)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Metrics reads the relay's /metrics and sums each metric's samples
// over their labels (histograms appear as their _bucket, _sum and
// _count series).
func Metrics(ctx context.Context, base string) (m map[string]float64, err error) {
	err = ReadMetrics(ctx, base, func(r io.Reader) error {
		m, err = ParseMetrics(r)
		return err
	})
	return m, err
}

// ReadMetrics GETs the relay's /metrics and hands the body to read.
func ReadMetrics(ctx context.Context, base string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return read(resp.Body)
}

// ParseMetrics sums each metric of the Prometheus text format over its
// labels.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value := line, ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metric line %q", line)
			}
			name, value = line[:i], line[j+1:]
		} else {
			name, value, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(value) // value, then an optional timestamp
		if len(f) == 0 {
			return nil, fmt.Errorf("metric line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}

// ModuleRoot is the directory of the capirelay module the command runs in.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run inside the capirelay module")
	}
	return filepath.Dir(gomod), nil
}

// Binary is the real relay, built from the module, serving in a subprocess
// and delivering to a local sink.
type Binary struct {
	Root  string // the module's directory
	Dir   string // temporary directory of the build (removed by Close)
	Sink  *Sink
	Relay *Relay
	bin   string
}

// StartBinary builds ./cmd/capirelay into a temporary directory named
// after prefix, starts a sink and runs the binary against it.
func StartBinary(ctx context.Context, prefix string) (_ *Binary, err error) {
	b := &Binary{}
	defer func() {
		if err != nil {
			b.Close() // b, not the nil a failure returns
		}
	}()
	if b.Root, err = ModuleRoot(); err != nil {
		return nil, err
	}
	if b.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	if b.bin, err = Build(ctx, b.Root, b.Dir); err != nil {
		return nil, err
	}
	if b.Sink, err = NewSink(); err != nil {
		return nil, err
	}
	if err = b.Restart(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Restart stops the relay, if one runs, and starts the binary on a new
// data directory, delivering to the sink, with siteSet applied to the
// bench site (see Options.SiteSet).
func (b *Binary) Restart(ctx context.Context, siteSet ...string) error {
	if b.Relay != nil {
		b.Relay.Close()
		b.Relay = nil
	}
	r, err := StartProcess(ctx, b.bin, Options{GraphURL: b.Sink.URL, SiteSet: siteSet})
	if err != nil {
		return err
	}
	b.Relay = r
	return nil
}

// Start runs another relay of the built binary, delivering to the sink
// (o.GraphURL is set to it): a second node on a shared database.
func (b *Binary) Start(ctx context.Context, o Options) (*Relay, error) {
	o.GraphURL = b.Sink.URL
	return StartProcess(ctx, b.bin, o)
}

// Close stops the relay and the sink and removes the build.
func (b *Binary) Close() {
	if b.Relay != nil {
		b.Relay.Close()
	}
	if b.Sink != nil {
		b.Sink.Close()
	}
	if b.Dir != "" {
		os.RemoveAll(b.Dir)
	}
}
