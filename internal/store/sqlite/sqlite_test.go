package sqlite_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

var keep = flag.Bool("keep", false, "keep test databases and print their paths")

// mustOpen opens a fresh database in a temporary directory and returns it
// with that directory.
func mustOpen(tb testing.TB) (*sqlite.DB, string) {
	tb.Helper()
	dir := tb.TempDir()
	if *keep {
		var err error
		if dir, err = os.MkdirTemp("", "capirelay-sqlite-"); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("database kept in %s", dir)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, sqlite.FileName), storetest.Box(tb))
	if err != nil {
		tb.Fatalf("Open = %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close = %v", err)
		}
	})
	return db, dir
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := mustOpen(t)
		return db
	})
}

// TestSealedAtRest checks that access tokens and payloads (IP addresses,
// user agents) never reach the database file or the WAL in plaintext.
func TestSealedAtRest(t *testing.T) {
	ctx := t.Context()
	db, dir := mustOpen(t)
	const (
		token   = "EAAplaintext-token-4d2f9c"
		payload = `{"client_ip_address":"198.51.100.213","marker":"payload-plaintext-7e1b"}`
		sandbox = `{"marker":"sandbox-plaintext-93aa"}`
		visible = "visible-site-name-5c0d" // not secret: proves we read the right files
	)
	site := &store.Site{Key: "k", Name: visible, APIKeyHash: "h", PixelID: "1", AccessToken: token}
	if err := db.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAccessToken(ctx, "k", token+"-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(ctx, []store.NewEvent{{SiteKey: "k", EventName: "Lead", EventID: "1",
		EventTime: time.Now(), Payload: []byte(payload)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordSandbox(ctx, "k", time.Now(), []byte(sandbox)); err != nil {
		t.Fatal(err)
	}

	check := func(when string) {
		t.Helper()
		var all []byte
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
			for _, secret := range []string{token, "plaintext-token", "198.51.100.213", "payload-plaintext", "sandbox-plaintext"} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: %s contains %q in plaintext", when, filepath.Base(f), secret)
				}
			}
		}
		if !bytes.Contains(all, []byte(visible)) {
			t.Fatalf("%s: the site name is in none of %q; the check reads the wrong files", when, files)
		}
	}
	check("WAL open") // data still in capirelay.db-wal
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check("after checkpoint")
}

func BenchmarkEnqueue(b *testing.B) {
	db, _ := mustOpen(b)
	storetest.BenchEnqueue(b, db)
}

func BenchmarkClaimComplete(b *testing.B) {
	db, _ := mustOpen(b)
	storetest.BenchClaimComplete(b, db)
}

// BenchmarkClaimFromFile claims batches that are only in the file, as the
// dispatcher does when it lags behind ingest (the items just committed are
// no longer in memory).
func BenchmarkClaimFromFile(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), sqlite.FileName)
	open := func() *sqlite.DB {
		db, err := sqlite.Open(ctx, path, storetest.Box(b))
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	db := open()
	storetest.BenchClaimCompleteReopened(b, db, func(store.Store) store.Store {
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		db = open()
		return db
	})
	db.Close()
}

// A new file gets 16 KiB pages. The driver runs a DSN's pragmas in
// alphabetical order, so a page_size pragma beside journal_mode(WAL) was
// silently ignored and files got SQLite's 4 KiB.
func TestNewFilePageSize(t *testing.T) {
	_, dir := mustOpen(t)
	f, err := os.Open(filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 100)
	if _, err := io.ReadFull(f, hdr); err != nil {
		t.Fatal(err)
	}
	if string(hdr[:16]) != "SQLite format 3\x00" {
		t.Fatalf("header %q: not an SQLite file", hdr[:16])
	}
	if got := int(binary.BigEndian.Uint16(hdr[16:18])); got != 16384 {
		t.Errorf("page size %d, want 16384", got)
	}
	if hdr[18] != 2 || hdr[19] != 2 {
		t.Errorf("file format versions %d/%d, want 2/2 (WAL)", hdr[18], hdr[19])
	}
}

func BenchmarkLearnIdentities(b *testing.B) {
	db, _ := mustOpen(b)
	storetest.BenchLearnIdentities(b, db, 100_000)
}
