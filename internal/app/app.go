// Package app assembles a relay process from its parts: store, pipeline,
// dispatcher, collectors, tag, dashboard and metrics. cmd/capirelay calls it;
// end-to-end tests use it in-process. It holds wiring only.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/dispatch"
	"github.com/capirelay/capirelay/internal/health"
	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

// Version is the relay's version, reported as partner_agent.
var Version = "0.1.0"

// PartnerAgent names capirelay in every request to Meta.
func PartnerAgent() string { return "capirelay-" + Version }

// App is one relay process.
type App struct {
	Config     config.Config
	Logger     *slog.Logger
	Store      store.Store
	Box        *secret.Box
	Metrics    *metrics.Metrics
	Pipeline   *pipeline.Pipeline
	Dispatcher *dispatch.Dispatcher
	Graph      *capi.Client
	Leads      *leads.Service
	Identity   *identity.Service
	Tokens     *health.TokenChecker
	Writes     *health.Writes // whether the store accepts writes (readiness)

	handler  http.Handler
	lock     *os.File
	local    *sqlite.DB // the store when it is SQLite (one node), else nil
	srv      *http.Server
	bg       sync.WaitGroup
	cancel   context.CancelFunc
	shutOnce sync.Once
}

// OpenStore opens the configured store: PostgreSQL when the database URL
// names one, else SQLite in the data directory.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, *secret.Box, error) {
	st, box, _, err := openStore(ctx, cfg)
	return st, box, err
}

// openStore is OpenStore that also gives the SQLite store as what it is
// (nil for PostgreSQL): what only a one-node store has (its dedup index in
// memory, its commit timings, orphaned claims to release at start) is set
// up from the open itself, never by asking a store.Store which kind it is.
func openStore(ctx context.Context, cfg config.Config) (store.Store, *secret.Box, *sqlite.DB, error) {
	key, err := secret.LoadOrCreateKey(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secret key: %w", err)
	}
	box, err := secret.New(key)
	if err != nil {
		return nil, nil, nil, err
	}
	if config.IsPostgres(cfg.DatabaseURL) {
		st, err := openPostgres(ctx, cfg.DatabaseURL, box)
		if err != nil {
			return nil, nil, nil, err
		}
		return st, box, nil, nil
	}
	db, err := sqlite.Open(ctx, cfg.SQLitePath(sqlite.FileName), box)
	if err != nil {
		return nil, nil, nil, err
	}
	db.SetDedupIndexKeys(cfg.DedupIndexKeys)
	return db, box, db, nil
}

// New builds a relay from cfg. Nothing runs until Start.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := checkVersion(cfg, logger, time.Now()); err != nil {
		return nil, err
	}
	var lock *os.File
	if !config.IsPostgres(cfg.DatabaseURL) {
		var err error
		if lock, err = lockDataDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	st, box, local, err := openStore(ctx, cfg)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	a := &App{Config: cfg, Logger: logger, Store: st, Box: box, Metrics: metrics.New(), lock: lock, local: local}
	if local != nil {
		// SQLite keeps its dedup index in memory: show its size.
		a.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "capirelay_dedup_keys_in_memory",
			Help: "Dedup keys of the 48-hour window held in memory by the SQLite store (about 14 bytes each).",
		}, func() float64 { return float64(local.DedupKeys()) }))
		observeCommits(local, a.Metrics.Registry)
	}
	if cfg.Demo {
		if err := EnsureDemoSite(ctx, st, cfg.PublicURL); err != nil {
			st.Close()
			return nil, fmt.Errorf("demo site: %w", err)
		}
	}
	a.Graph = &capi.Client{BaseURL: cfg.GraphURL, Version: cfg.GraphVersion, Timeout: cfg.GraphTimeout, UserAgent: PartnerAgent()}
	a.Pipeline = pipeline.New(st)
	a.Pipeline.Gate = pipeline.NewGate(runtime.GOMAXPROCS(0))
	if local != nil {
		a.Pipeline.Work = pipeline.NewGate(serverWork())
	}
	registerGates(a.Metrics.Registry, a.Pipeline)
	a.Writes = &health.Writes{Logger: logger}
	a.Pipeline.Writes = a.Writes
	a.Pipeline.Scrubbed = a.Metrics.URLsScrubbed
	a.Pipeline.CustomScrubbed = a.Metrics.CustomDataScrubbed
	a.Identity = identity.New(st, logger)
	a.Identity.Register(a.Metrics.Registry)
	a.Pipeline.Enricher, a.Pipeline.Observer = a.Identity, a.Identity
	a.Leads = leads.New(st, a.Pipeline, logger)
	a.Tokens = &health.TokenChecker{Sites: st, Graph: a.Graph, Metrics: a.Metrics, Logger: logger}
	a.Dispatcher = &dispatch.Dispatcher{
		Store:    st,
		Meta:     &dispatch.Meta{Client: a.Graph, PartnerAgent: PartnerAgent()},
		Sandbox:  &dispatch.Sandbox{Store: st, PartnerAgent: PartnerAgent()},
		Metrics:  a.Metrics,
		Logger:   logger,
		Linger:   cfg.BatchLinger,
		Lease:    cfg.DispatchLease,
		Parallel: cfg.DispatchParallel,
	}
	if a.handler, err = a.routes(); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

// Handler is the relay's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Start runs the background work: delivery and housekeeping.
func (a *App) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	if a.local != nil { // SQLite: this process is the only dispatcher
		if n, err := a.local.ReleaseOrphans(ctx); err != nil {
			a.Logger.Error("release orphaned claims", "err", err)
		} else if n > 0 {
			a.Logger.Info("events in flight when the last run stopped are due again", "count", n)
		}
	}
	a.Dispatcher.Start(ctx)
	a.bg.Add(4)
	go func() {
		defer a.bg.Done()
		a.Tokens.Run(ctx)
	}()
	go func() {
		defer a.bg.Done()
		a.Identity.Run(ctx)
	}()
	go func() {
		defer a.bg.Done()
		a.housekeeping(ctx)
	}()
	go func() {
		defer a.bg.Done()
		a.Leads.Run(ctx)
	}()
}

// Serve accepts connections on ln until Shutdown.
func (a *App) Serve(ln net.Listener) error {
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
	}
	err := a.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops in order: HTTP (finishing requests in flight), delivery
// (finishing the batch in flight), background jobs, then the store.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.shutOnce.Do(func() {
		if a.srv != nil {
			err = a.srv.Shutdown(ctx)
		}
		a.Dispatcher.Stop()
		if a.cancel != nil {
			a.cancel()
		}
		a.bg.Wait()
		err = errors.Join(err, a.Store.Close())
		if a.lock != nil {
			a.lock.Close()
		}
	})
	return err
}

func (a *App) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if n, err := a.Store.Prune(ctx, now.Add(-a.Config.Retention), now.Add(-store.DedupWindow)); err != nil {
			a.Logger.Error("prune", "err", err)
		} else if n > 0 {
			a.Logger.Info("pruned delivered events", "count", n)
		}
	}
}

// checkVersion warns from 90 days before the Graph API version expires and
// refuses an expired one unless allowed.
func checkVersion(cfg config.Config, logger *slog.Logger, now time.Time) error {
	info, ok := capi.LookupVersion(cfg.GraphVersion)
	if !ok {
		logger.Warn("unknown Graph API version; check it is current", "version", cfg.GraphVersion)
		return nil
	}
	if info.Expires.IsZero() {
		return nil
	}
	switch left := info.Expires.Sub(now); {
	case left <= 0 && !cfg.AllowExpiredVersion:
		return fmt.Errorf("the Graph API version %s expired on %s; set CAPIRELAY_GRAPH_VERSION to a current version (or CAPIRELAY_ALLOW_EXPIRED_VERSION=true)",
			cfg.GraphVersion, info.Expires.Format("2006-01-02"))
	case left <= 0:
		logger.Warn("Graph API version has expired", "version", cfg.GraphVersion, "expired", info.Expires.Format("2006-01-02"))
	case left <= 90*24*time.Hour:
		logger.Warn("Graph API version expires soon; move to a newer one", "version", cfg.GraphVersion,
			"expires", info.Expires.Format("2006-01-02"), "days_left", int(left.Hours()/24))
	}
	return nil
}

// observeCommits shows the SQLite store's group commits: how many events
// each took, how long the write took and how long the fsync that made it
// durable took, the two parts of every ingest answer's wait.
func observeCommits(db *sqlite.DB, reg prometheus.Registerer) {
	events := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "capirelay", Name: "store_commit_events",
		Help:    "Events per group commit of the SQLite store.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	commit := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "capirelay", Name: "store_commit_seconds",
		Help:    "Time to write one group commit of the SQLite store, before its fsync.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)})
	sync := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "capirelay", Name: "store_sync_seconds",
		Help:    "Time of one fsync of the SQLite WAL, which makes the groups written before it durable.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)})
	reg.MustRegister(events, commit, sync)
	db.ObserveCommits(&sqlite.CommitObserver{
		Commit: func(n int, took time.Duration) {
			events.Observe(float64(n))
			commit.Observe(took.Seconds())
		},
		Sync: func(took time.Duration) { sync.Observe(took.Seconds()) },
	})
}

// serverWork is how many requests of /v1/events and the Graph alias work
// at once past reading their bodies (pipeline.Pipeline.Work) on SQLite;
// the others wait holding only their bodies. A working request holds its
// decoded events and sealed payloads until its commit. With every one of
// make bench's 64 clients working at once, in process at a 104 MiB heap
// limit on 2 CPUs (20 s, December 2026), the live heap after each GC
// averaged 55 MB and the GC ran 299 times; with 8 at once 41 MB and 222
// times, and 37.2k realistic events/s were ingested against 30.8k. Four
// per CPU keep the CPUs and the writer busy: 4 at once on 2 CPUs ingested
// less (the writer waited for the next request's events), 6 to 12 alike.
//
// PostgreSQL has no such bound beyond the route's 64: its four writers
// commit at once, and each group needs requests to fill it. make
// bench-postgres on 2 CPUs, alternating: with 8 at once one node ingested
// 10.5k and 10.3k events/s at 39–41 µs of relay CPU an event, against
// 11.3k and 10.1k at 34–37 µs with 64; two nodes 6.9k and 7.7k against
// 7.8k and 8.4k. It holds no dedup index in memory, so its live heap is
// the smaller one anyway.
func serverWork() int {
	return 4 * runtime.GOMAXPROCS(0)
}

// registerGates shows how many ingest requests wait at the pipeline's
// gates: for a CPU slot ("cpu", every ingest request) and, on SQLite, for a
// place to work past reading their bodies ("work", server requests). A
// queue that stays long says the relay is at capacity; requests past the
// route's bound are refused with 503.
func registerGates(r *prometheus.Registry, p *pipeline.Pipeline) {
	for _, g := range []struct {
		name string
		gate *pipeline.Gate
	}{{"cpu", p.Gate}, {"work", p.Work}} {
		if g.gate == nil {
			continue
		}
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "capirelay_ingest_waiting",
			Help:        "Ingest requests waiting at a pipeline gate: for a CPU slot (cpu) or, on SQLite, for a place to work (work).",
			ConstLabels: prometheus.Labels{"gate": g.name},
		}, func() float64 { return float64(g.gate.Waiting()) }))
	}
}
