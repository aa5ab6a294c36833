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
// The process's resident memory at full load is this limit (the heap stays
// at it) plus about 35 MiB that the GC does not govern: 22 MiB of the
// binary's code and tables, and SQLite's memory, which is outside Go's
// heap. So the limit decides peak RSS, and the live heap under it decides
// what it costs: the GC runs each time the heap's headroom above the live
// heap has been allocated.
//
// It was 140 MiB while a request allocated 16 KB an event and identity's
// cache held 20,000 records; lower limits then cost a seventh of ingest.
// Since a request allocates about 9 KB an event in the relay and the live
// heap is about 50 MB at full load (the dedup index's 28 MB on top once it
// is full), 104 MiB costs about 2 % of the relay's CPU (the GC's own
// accounting, GODEBUG=gctrace=1: 5 % of it against 3 %) for 31 MiB less
// resident. Measured with the binary on 2 CPUs, realistic /v1/events, 64
// clients × 100 events, December 2026: 60 s at full load, with the dedup
// index filling, 34.2k events/s and a peak RSS of 138.5 MiB (145 MB)
// against 34.7k and 171.5 MiB at 140 MiB (913 collections against 392);
// paced at 20,000 events/s, p99 22.8 and 24.1 ms against 38.3 and 20.7 ms,
// peak RSS 132.5–133.4 against 165.6–166.4 MiB. Where memory is cheaper
// than CPU, GOMEMLIMIT=140MiB buys those 2 % back.
const defaultMemoryLimit = 104 << 20

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
