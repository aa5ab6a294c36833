// Command overview times the dashboard overview's store calls (Activity,
// Errors, DeliveryLatencies, Depth) on an outbox that holds a day of
// events, on SQLite or PostgreSQL:
//
//	go run ./bench/cmd/overview -rows 2000000 -dir /tmp/overview
//	go run ./bench/cmd/overview -rows 2000000 -postgres postgres://…/scratch
//
// The first run opens a new store (its migrations) and writes -rows events
// created evenly over the last 24 hours, 3 sites, 0.1 % dead, about 0.1 %
// waiting to retry and the rest delivered 300 ms after they were stored,
// with SQL straight into the outbox (the store's own path would take
// minutes). Later runs on the same directory or database read what is
// there. With -at, it prints each minute Activity returns for the 24 hours
// before that time (Unix milliseconds) instead, to compare two versions'
// answers on the same data.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/postgres"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "overview:", err)
		os.Exit(1)
	}
}

// overviewStore is what the overview page asks of the store.
type overviewStore interface {
	store.Admin
	Depth(ctx context.Context) (map[string]int, error)
	Close() error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("overview", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 2_000_000, "events to write into a new store")
	dir := fs.String("dir", "", "SQLite data directory (created if absent)")
	pgURL := fs.String("postgres", "", "postgres://… of a scratch database instead of SQLite")
	rounds := fs.Int("rounds", 3, "times to run the calls")
	at := fs.Int64("at", 0, "print Activity's minutes for the 24 hours before this Unix millisecond instead of timing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*dir == "") == (*pgURL == "") {
		return errors.New("give -dir or -postgres")
	}
	if *rows <= 0 {
		return errors.New("-rows must be positive")
	}
	box, err := secret.New(make([]byte, secret.KeySize))
	if err != nil {
		return err
	}
	now := time.Now()
	var db overviewStore
	if *pgURL != "" {
		pg, err := postgres.Open(ctx, *pgURL, box)
		if err != nil {
			return err
		}
		db = pg
		if err := fillPostgres(ctx, *pgURL, *rows, now, stderr); err != nil {
			db.Close()
			return err
		}
	} else {
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
		path := filepath.Join(*dir, sqlite.FileName)
		_, statErr := os.Stat(path)
		lite, err := sqlite.Open(ctx, path, box)
		if err != nil {
			return err
		}
		db = lite
		if statErr != nil {
			// Written by another connection: close the store first.
			lite.Close()
			if err := fillSQLite(path, *rows, now, stderr); err != nil {
				return err
			}
			if db, err = sqlite.Open(ctx, path, box); err != nil {
				return err
			}
		}
	}
	defer db.Close()
	if *at != 0 {
		end := time.UnixMilli(*at)
		act, err := db.Activity(ctx, end.Add(-24*time.Hour), end)
		if err != nil {
			return err
		}
		for _, m := range act {
			fmt.Fprintln(stdout, m.Minute.UnixMilli(), m.In, m.Delivered, m.Dead)
		}
		return nil
	}
	for range *rounds {
		start := time.Now()
		act, err := db.Activity(ctx, start.Add(-24*time.Hour), start.Add(time.Minute))
		if err != nil {
			return err
		}
		tAct := time.Since(start)
		var in, delivered, dead int
		for _, m := range act {
			in, delivered, dead = in+m.In, delivered+m.Delivered, dead+m.Dead
		}
		start = time.Now()
		errs, err := db.Errors(ctx, start.Add(-24*time.Hour), 10)
		if err != nil {
			return err
		}
		tErr := time.Since(start)
		start = time.Now()
		lat, err := db.DeliveryLatencies(ctx, start.Add(-time.Hour), 5000)
		if err != nil {
			return err
		}
		tLat := time.Since(start)
		start = time.Now()
		if _, err := db.Depth(ctx); err != nil {
			return err
		}
		tDepth := time.Since(start)
		fmt.Fprintf(stdout, "Activity %v (%d minutes: %d stored, %d delivered, %d dead)  Errors %v (%d groups)  DeliveryLatencies %v (%d)  Depth %v\n",
			tAct.Round(time.Millisecond), len(act), in, delivered, dead, tErr.Round(100*time.Microsecond), len(errs),
			tLat.Round(100*time.Microsecond), len(lat), tDepth.Round(100*time.Microsecond))
	}
	return nil
}

// kind is what became of event i: 0.1 % dead, about 0.1 % waiting to
// retry, the rest delivered.
func kind(i int) (state, lastError string) {
	switch {
	case i%1000 == 7:
		return store.StateDead, "rejected: Invalid parameter (code 100)"
	case i%997 == 3:
		return store.StatePending, "HTTP 500"
	}
	return store.StateDelivered, ""
}

func fillSQLite(path string, n int, now time.Time, stderr io.Writer) error {
	fmt.Fprintf(stderr, "writing %d events into %s\n", n, path)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer db.Close()
	first := now.Add(-24 * time.Hour).UnixMilli()
	const chunk = 100_000
	for lo := 0; lo < n; lo += chunk {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		st, err := tx.Prepare(`INSERT INTO outbox (site_key, event_name, event_id, event_time, state, attempts,
			next_attempt, last_error, trace_id, source, created_at, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			tx.Rollback()
			return err
		}
		for i := lo; i < min(lo+chunk, n); i++ {
			created := first + int64(24*time.Hour/time.Millisecond)*int64(i)/int64(n)
			state, lastError := kind(i)
			delivered := created + 300
			if state == store.StatePending {
				delivered = 0
			}
			if _, err := st.Exec(fmt.Sprint("site", i%3), "Purchase", fmt.Sprint("ev-", i), created/1000, state, 1,
				created, lastError, "trace", "website", created, delivered); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	_, err = db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

func fillPostgres(ctx context.Context, url string, n int, now time.Time, stderr io.Writer) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var have int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&have); err != nil || have > 0 {
		return err
	}
	fmt.Fprintf(stderr, "writing %d events into the outbox\n", n)
	if _, err := conn.Exec(ctx, `INSERT INTO outbox (site_key, event_name, event_id, event_time, state, attempts,
			next_attempt, last_error, trace_id, source, created_at, delivered_at)
		SELECT 'site' || (i % 3), 'Purchase', 'ev-' || i, c, s, 1, c, e, 'trace', 'website', c,
			CASE WHEN s = 'pending' THEN NULL ELSE c + interval '300 ms' END
		FROM (SELECT i, c,
				CASE WHEN i % 1000 = 7 THEN 'dead' WHEN i % 997 = 3 THEN 'pending' ELSE 'delivered' END AS s,
				CASE WHEN i % 1000 = 7 THEN 'rejected: Invalid parameter (code 100)' WHEN i % 997 = 3 THEN 'HTTP 500' ELSE '' END AS e
			FROM (SELECT i, $1::timestamptz + i * interval '1 day' / $2::int AS c FROM generate_series(0, $2::int - 1) i) g) x`,
		now.Add(-24*time.Hour), n); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `VACUUM ANALYZE outbox`)
	return err
}
