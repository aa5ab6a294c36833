package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	if getenv("GOMEMLIMIT") == "" {
		// A soft heap limit: the GC works harder before the process grows
		// past it. Work in progress is bounded by the collectors, so the
		// live heap stays well under it. GOMEMLIMIT overrides.
		debug.SetMemoryLimit(memoryLimit(cfg))
	}
	if getenv("GOGC") == "" {
		// With the soft limit capping the heap, the GC need not run
		// every time the heap doubles: a small live heap (a quiet relay)
		// may grow fivefold first. GOGC overrides.
		debug.SetGCPercent(defaultGCPercent)
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := app.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// Listen before serving, so a busy port fails start-up.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.Shutdown(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	a.Start(ctx)
	store := "sqlite"
	if config.IsPostgres(cfg.DatabaseURL) {
		store = "postgres"
	}
	logger.Info("capirelay listening", "addr", ln.Addr().String(), "store", store, "graph_version", cfg.GraphVersion, "version", app.Version)
	if cfg.Demo {
		logger.Info("demo page", "url", cfg.PublicURL+"/demo")
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errorsJoin(err, a.Shutdown(sctx))
}

// defaultMemoryLimit is serve's soft heap limit when GOMEMLIMIT is unset.
// Measured on 2 CPUs under 64 clients × 100 events. Once a request stopped
// holding its decoded events and payloads through the commit's wait, the
// live heap under that load fell from about 62 to 36 MB, and 72 MiB kept
// the throughput of 80 MiB (53–59k events/s; 64 MiB: 51k) with 7 MiB less
// resident (the process peaks near 116–125 MiB alone, 145 MiB at 80 MiB
// through the whole benchmark run). Identity's bounded memory (a 16 MiB
// filter, a cache of up to 50,000 records, 4,096 queued observations) came
// on top of that: under 72 MiB the GC then ran all the time on
// unique-customer traffic (make bench, realistic /v1/events: 8.5k events/s
// at 72 MiB against 29.9k at 140 MiB, best case 33k against 47.9k; peak
// RSS 179 against 205 MiB), so the limit is 140 MiB. The filter now
// starts at 1 MiB; with the 15 MiB it freed, a limit of 124 MiB still cost
// ingest (in process, 21.2–25.6k against 29.5k events/s), so the limit
// stays and the GC runs less often.
const defaultMemoryLimit = 140 << 20

// defaultGCPercent is serve's GOGC when the variable is unset. Measured with
// the binary on 2 CPUs: /v1/events used 37–41 µs of CPU per event at 400
// against 43–45 µs at Go's 100, and /e 124–132 µs per request against
// 125–158 µs, at the same peak RSS (the soft limit bounds the heap either
// way; only a quiet relay's heap is larger, up to the limit).
const defaultGCPercent = 400

// memoryLimit is defaultMemoryLimit plus the memory of a dedup index set
// larger than the default, so a bigger index does not make the GC run
// against the limit all the time.
func memoryLimit(cfg config.Config) int64 {
	limit := int64(defaultMemoryLimit)
	if extra := cfg.DedupIndexKeys - config.DefaultDedupIndexKeys; extra > 0 && !config.IsPostgres(cfg.DatabaseURL) {
		limit += int64(extra) * sqlite.DedupKeyBytes
	}
	return limit
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
