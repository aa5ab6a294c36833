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
// Under 140 MiB peak RSS is about 172 MiB at full load, over the 150 MB
// asked of the relay on 2 CPUs. A lower limit meets that and costs
// throughput, most of it once the dedup index holds its 28 MB. Measured
// on 2 CPUs, December 2026, with a request allocating about 9 KB an event
// and a live heap of about 50 MB at full load besides the index: at 104
// MiB, alternating make bench runs ingested 30.3–35.3k realistic events/s
// against 34.6–36.7k at 140 MiB (a tenth less), with a peak RSS of
// 138.4–139.7 against 171.6–172.3 MiB, and make soak, paced at half its
// probe for 10 minutes (the index full after about 2), answered 15,549
// events/s of the 17,567 it was paced at, p50 15.8 s, against all of
// 20,335 at 140 MiB, p50 44 ms (peak RSS 144.6 against 175.2 MiB). The
// GC's own accounting (GODEBUG=gctrace=1) was 5 % of the CPU against 3 %
// in short runs; the rest is, presumably, the marks' share of the two CPUs
// while the one writer every request waits for needs one. A quarter of
// sustained capacity is too much for 33 MiB, so the limit stays 140 MiB;
// on a host where memory is tighter than CPU, GOMEMLIMIT=104MiB keeps the
// process under 150 MB.
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
