package main

import (
	"context"
	"errors"
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
	if errors.Is(err, config.ErrFlag) {
		return fmt.Errorf("%w: %w", errUsage, err) // printed with the usage
	}
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
// 104 MiB keeps peak RSS under the 150 MB asked of the relay on 2 CPUs:
// about 138 MiB at full load. It was 140 MiB (about 172 MiB) while all of
// up to 64 server requests at once held their decoded events and sealed
// payloads until their commit: then 104 MiB cost a tenth of make bench's
// realistic ingest, and in make soak, once the dedup index held its 28
// MB, a quarter of what the relay sustained (15,549 of 17,567 events/s
// answered, p50 15.8 s). With 4 requests per CPU working at once
// (pipeline.Pipeline.Work) the live heap is about 14 MB smaller, and on 2
// CPUs, December 2026, 104 MiB held make soak's pace of 18,788 events/s
// for 10 minutes (p50 16 ms) and answered 94 % of a pace of 20,335 that
// 140 MiB answered 99 % of; docs/scaling.md ("Memory") has the figures.
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
