package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/machine"
	"github.com/capirelay/capirelay/bench/relay"
)

// pgReport is the PostgreSQL benchmark: the realistic /v1/events load
// on one node, then on two nodes sharing one database.
type pgReport struct {
	opts              options
	machine           machine.Info
	started, finished time.Time
	loadEnd           string
	server            string // PostgreSQL's version()
	runs              []*pgRun
	goEnv             []string // as report.goEnv
}

// pgRun is one measured load spread over nodes relays.
type pgRun struct {
	nodes     int
	res       *loadgen.Result // all nodes together
	perNode   []*loadgen.Result
	relayCPU  time.Duration // all nodes' CPU over the phase
	delivered int64         // by the sink during the phase
	acked     int64         // warm-up included
	total     int64         // delivered by the end of the drain
	drain     time.Duration
}

// postgres runs the realistic load against one node and then two, each
// time on a new database created on the server of o.postgres, dropped
// afterwards.
func (r *runner) postgres() (*pgReport, error) {
	rep := &pgReport{opts: r.o}
	admin, err := pgx.Connect(r.ctx, r.o.postgres)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(r.o.postgres), err)
	}
	defer admin.Close(context.Background())
	if err := admin.QueryRow(r.ctx, "SELECT version()").Scan(&rep.server); err != nil {
		return nil, err
	}
	// The binary's own relay (SQLite) is not used here.
	if r.b.Relay != nil {
		r.b.Relay.Close()
		r.b.Relay = nil
	}
	for _, nodes := range []int{1, 2} {
		run, err := r.postgresRun(admin, nodes)
		if err != nil {
			return nil, err
		}
		rep.runs = append(rep.runs, run)
	}
	return rep, nil
}

func (r *runner) postgresRun(admin *pgx.Conn, nodes int) (*pgRun, error) {
	name := fmt.Sprintf("capirelay_bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec(r.ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	defer admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	u, err := url.Parse(r.o.postgres)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	var key [32]byte
	rand.Read(key[:])
	o := relay.Options{DatabaseURL: u.String(), SecretKey: base64.StdEncoding.EncodeToString(key[:])}
	var rels []*relay.Relay
	defer func() {
		for _, rel := range rels {
			rel.Close()
		}
	}()
	for i := range nodes {
		rel, err := r.b.Start(r.ctx, o)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		rels = append(rels, rel)
		o.Keys = &relay.Keys{SiteKey: rel.SiteKey, APIKey: rel.APIKey}
		r.logf("PostgreSQL node %d of %d: pid %d at %s", i+1, nodes, rel.Pid, rel.URL)
	}
	run := &pgRun{nodes: nodes}
	sinkStart := r.b.Sink.Events.Load()
	// Each node's clients have a range of customers of their own; the
	// database knows all of them from the warm-up on.
	starts := make([]uint64, nodes)
	for i := range starts {
		starts[i] = r.next + uint64(i)*1e9
	}
	nexts := append([]uint64(nil), starts...)
	if r.o.warmup > 0 {
		res, _, err := r.spread(rels, r.o.warmup, starts, nexts)
		if err != nil {
			return nil, err
		}
		run.acked += res.Events
	}
	var cpuBefore time.Duration
	for _, rel := range rels {
		c, err := relay.ProcCPU(rel.Pid)
		if err != nil {
			return nil, err
		}
		cpuBefore += c
	}
	sinkBefore := r.b.Sink.Events.Load()
	if run.res, run.perNode, err = r.spread(rels, r.o.duration, starts, nexts); err != nil {
		return nil, err
	}
	run.delivered = r.b.Sink.Events.Load() - sinkBefore
	run.acked += run.res.Events
	for _, rel := range rels {
		c, err := relay.ProcCPU(rel.Pid)
		if err != nil {
			return nil, err
		}
		run.relayCPU += c
	}
	run.relayCPU -= cpuBefore
	r.logf("PostgreSQL, %d node(s): %s; delivered %d during the phase", nodes, run.res, run.delivered)
	t := time.Now()
	for r.b.Sink.Events.Load()-sinkStart < run.acked && time.Since(t) < 2*time.Minute && r.ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	run.drain, run.total = time.Since(t), r.b.Sink.Events.Load()-sinkStart
	return run, r.ctx.Err()
}

// spread runs the realistic /v1/events load for d on every node at once,
// 64 clients in all, node i's with new customers from nexts[i] (which it
// advances) and returning ones from starts[i] on, and sums the results.
func (r *runner) spread(rels []*relay.Relay, d time.Duration, starts, nexts []uint64) (*loadgen.Result, []*loadgen.Result, error) {
	per := make([]*loadgen.Result, len(rels))
	errs := make([]error, len(rels))
	var wg sync.WaitGroup
	for i, rel := range rels {
		cfg := loadgen.Config{URL: rel.URL, APIKey: rel.APIKey, Mode: loadgen.ModeServer, Concurrency: 64 / len(rels),
			EventsPerRequest: 100, Returning: r.o.returning, Duration: d, FirstCustomer: nexts[i], Known: nexts[i] - starts[i],
			RunID: fmt.Sprintf("n%d%d", i, time.Now().UnixNano()%1e9)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			per[i], errs[i] = loadgen.Run(r.ctx, cfg)
		}()
	}
	wg.Wait()
	sum := &loadgen.Result{Mode: loadgen.ModeServer, Mix: loadgen.MixRealistic, Status: map[int]int64{}, Latency: &loadgen.Histogram{}}
	for i, res := range per {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		nexts[i] = res.NextCustomer
		r.next = max(r.next, res.NextCustomer)
		sum.Concurrency += res.Concurrency
		sum.Elapsed = max(sum.Elapsed, res.Elapsed)
		sum.Requests += res.Requests
		sum.Events += res.Events
		sum.Sent += res.Sent
		sum.Returning += res.Returning
		sum.Failures += res.Failures
		sum.Latency.Merge(res.Latency)
		for k, v := range res.Status {
			sum.Status[k] += v
		}
		if sum.FirstError == "" {
			sum.FirstError = res.FirstError
		}
	}
	return sum, per, r.ctx.Err()
}

// redact drops a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database URL"
	}
	return u.Redacted()
}

func (rep *pgReport) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# capirelay on PostgreSQL, %s\n\n", rep.started.UTC().Format("2006-01-02 15:04 MST"))
	p("Produced by `make bench-postgres` (`go run ./bench/cmd/benchall -postgres URL -out bench/results`) in %s.\n\n", rep.finished.Sub(rep.started).Round(time.Second))
	(&report{machine: rep.machine, loadEnd: rep.loadEnd}).machineSection(&b)
	goEnvLine(&b, rep.goEnv)
	p("- PostgreSQL: %s, on the same machine, a new database per run\n\n", rep.server)
	p("## Realistic `/v1/events`, relay nodes sharing one PostgreSQL\n\n")
	p("The realistic mix (every event a distinct customer, %.0f %% returning) from 64 clients × 100 events per request, split evenly over the nodes, each its own `capirelay serve` with the same `CAPIRELAY_DATABASE_URL` and `CAPIRELAY_SECRET_KEY`, all delivering to one local Graph sink. %s measured after %s of warm-up.\n\n",
		100*max(rep.opts.returning, 0), rep.opts.duration, rep.opts.warmup)
	p("| nodes | acknowledged (durable) | delivered during the phase | p50 / p99 | relay CPU | backlog delivered after |\n|---|---|---|---|---|---|\n")
	for _, run := range rep.runs {
		res := run.res
		perEvent := 0.0
		if res.Events > 0 {
			perEvent = float64(run.relayCPU) / 1e3 / float64(res.Events)
		}
		p("| %d | **%.0f events/s** (%d events, failures %d, refused %d) | %.0f events/s | %s / %s | %.1f µs/event, all nodes | %d of %d in %s |\n",
			run.nodes, res.EventsPerSec(), res.Events, res.Failures, res.Sent-res.Events, float64(run.delivered)/res.Elapsed.Seconds(),
			msf(res.Latency.Quantile(0.5)), msf(res.Latency.Quantile(0.99)), perEvent, run.total, run.acked, run.drain.Round(100*time.Millisecond))
	}
	p("\nThe nodes, the load generator, the sink and PostgreSQL share the machine's %d CPUs, so a second node adds no CPU here: it shows that two nodes work together on one database (claims, dedup, dispatch), not how they scale on separate machines.\n", rep.machine.NProc)
	return b.String()
}
