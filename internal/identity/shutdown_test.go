package identity_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

// TestShutdownFinishesTheWriteInProgress: the writer is writing a batch
// (here: waiting for identity.db's write lock, which another connection
// holds) when the relay shuts down. The batch is still written once the
// lock is free, and nothing is logged: shutdown is no failure.
func TestShutdownFinishesTheWriteInProgress(t *testing.T) {
	dir := t.TempDir()
	box, err := secret.New(bytes.Repeat([]byte{5}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, sqlite.FileName), box)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	site := &store.Site{Key: "shop", Name: "Shop", APIKeyHash: "h", DefaultRegion: "US"}
	if err := db.CreateSite(t.Context(), site); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ids := identity.New(db, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ids.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	pipe := pipeline.New(db)
	pipe.Enricher, pipe.Observer = ids, ids
	if err := ids.Flush(t.Context()); err != nil { // Run has loaded its filter
		t.Fatal(err)
	}

	holder, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.IdentityFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	lock, err := holder.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	res, err := pipe.Submit(t.Context(), []pipeline.Input{{Site: site, Source: pipeline.SourceBrowser, VisitorID: "v-1",
		Event: &event.Event{EventName: "Lead", ActionSource: "website", EventSourceURL: "https://shop.example/", EventTime: event.Time(time.Now().Unix()),
			UserData: event.UserData{Em: event.List{rawEmail}, ClientIPAddress: "203.0.113.7", ClientUserAgent: ua}}}})
	if err != nil || res[0].Status != pipeline.Accepted {
		t.Fatalf("Submit = %+v, %v", res, err)
	}
	time.Sleep(300 * time.Millisecond) // the writer takes the observation and waits for the lock
	cancel()
	time.Sleep(300 * time.Millisecond)
	if _, err := lock.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	if got, err := db.Identity(t.Context(), "shop", "v-1"); err != nil || len(got.Hashes[store.KeyEmail]) != 1 {
		t.Errorf("Identity after shutdown = %+v, %v; want the email learned", got, err)
	}
	if logs.Len() != 0 {
		t.Errorf("shutdown logged %q, want nothing", logs.String())
	}
}
