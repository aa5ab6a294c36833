package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// TestServerWorkOnSQLiteOnly: on SQLite, server requests work serverWork()
// at once (the pipeline's Work); on PostgreSQL, whose writers commit
// several groups at once, only the route's limit bounds them.
func TestServerWorkOnSQLiteOnly(t *testing.T) {
	r := newRelay(t, nil)
	work := r.app.Pipeline.Work
	if work == nil {
		t.Fatal("SQLite: the pipeline has no Work bound")
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range serverWork() {
		if err := work.Enter(ended, ""); err != nil {
			t.Fatalf("SQLite: place %d of %d not free: %v", i+1, serverWork(), err)
		}
	}
	if err := work.Enter(ended, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("SQLite: more than %d places (%v)", serverWork(), err)
	}
	for range serverWork() {
		work.Leave()
	}

	cfg := config.Config{DataDir: t.TempDir(), GraphURL: "http://127.0.0.1:1", DatabaseURL: storetest.PostgresDatabase(t)}
	a, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if a.Pipeline.Work != nil {
		t.Error("PostgreSQL: the pipeline has a Work bound")
	}
}
