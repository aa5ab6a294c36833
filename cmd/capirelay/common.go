package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/store"
)

func appVersion() string { return app.Version }

// storeFlags are the flags every store-using command shares; the
// environment gives their defaults.
type storeFlags struct {
	dataDir, databaseURL string
}

func (f *storeFlags) register(fs *flag.FlagSet, getenv getenvFunc) {
	def := func(name, d string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return d
	}
	fs.StringVar(&f.dataDir, "data-dir", def("CAPIRELAY_DATA_DIR", config.DefaultDataDir), "data directory (CAPIRELAY_DATA_DIR)")
	fs.StringVar(&f.databaseURL, "database-url", def("CAPIRELAY_DATABASE_URL", ""), "postgres://… (CAPIRELAY_DATABASE_URL); default SQLite in the data directory")
	// -h does not print the URL from the environment: it may hold a password.
	fs.Lookup("database-url").DefValue = ""
}

// open opens the store the way serve does, so the CLI works beside a
// running relay on the same data directory.
func (f *storeFlags) open(ctx context.Context, getenv getenvFunc) (store.Store, error) {
	cfg := config.Config{DataDir: f.dataDir, DatabaseURL: f.databaseURL, SecretKey: getenv("CAPIRELAY_SECRET_KEY")}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, _, err := app.OpenStore(ctx, cfg)
	return st, err
}

func newFlagSet(name string, stderr io.Writer, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: capirelay %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}
