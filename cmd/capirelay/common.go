package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
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
// running relay on the same data directory. It creates nothing: a data
// directory without relay data, or a store without its secret key, is an
// error, so a mistyped --data-dir neither reads as an empty relay nor gets
// sites no relay will serve.
func (f *storeFlags) open(ctx context.Context, getenv getenvFunc) (store.Store, error) {
	cfg, err := f.config(getenv)
	if err != nil {
		return nil, err
	}
	if err := checkRelayData(cfg); err != nil {
		return nil, err
	}
	st, _, err := app.OpenStore(ctx, cfg)
	return st, err
}

// create is open for migrate, which, like serve, may create the data
// directory, its secret key and the store.
func (f *storeFlags) create(ctx context.Context, getenv getenvFunc) (store.Store, error) {
	cfg, err := f.config(getenv)
	if err != nil {
		return nil, err
	}
	st, _, err := app.OpenStore(ctx, cfg)
	return st, err
}

func (f *storeFlags) config(getenv getenvFunc) (config.Config, error) {
	cfg := config.Config{DataDir: f.dataDir, DatabaseURL: f.databaseURL, SecretKey: getenv("CAPIRELAY_SECRET_KEY")}
	return cfg, cfg.Validate()
}

// checkRelayData tells why cfg names no store that serve or migrate made:
// no SQLite file, or no secret key to open its sealed values with (a new
// key would make them unreadable, and seal new ones that serve cannot read).
func checkRelayData(cfg config.Config) error {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	if !config.IsPostgres(cfg.DatabaseURL) {
		path := cfg.SQLitePath(sqlite.FileName)
		_, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && cfg.DatabaseURL != "":
			abs, _ := filepath.Abs(path)
			return fmt.Errorf("no relay database at %s (start the relay once with \"capirelay serve\" or \"capirelay migrate\", or check --database-url)", abs)
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return fmt.Errorf("no relay data in %s (start it once with \"capirelay serve\" or \"capirelay migrate\", or pass --data-dir)", dir)
		case err != nil:
			return fmt.Errorf("data directory: %w", err)
		}
	}
	if cfg.SecretKey != "" {
		return nil
	}
	switch _, err := os.Stat(filepath.Join(cfg.DataDir, secret.KeyFileName)); {
	case errors.Is(err, fs.ErrNotExist) && config.IsPostgres(cfg.DatabaseURL):
		return fmt.Errorf("no secret key: with a PostgreSQL database, set CAPIRELAY_SECRET_KEY to the key the relay uses, or pass the --data-dir whose %s it uses (%s has none)", secret.KeyFileName, dir)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no secret key in %s: set CAPIRELAY_SECRET_KEY to the key the relay uses", dir)
	case err != nil:
		return fmt.Errorf("secret key: %w", err)
	}
	return nil
}

// parseFlags parses args into fs. The flag package has printed a bad
// flag's message and the usage itself, so its error is marked errUsage:
// main does not print it a second time, and exits 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

// parseNoArgs is parseFlags for a command that takes flags only: an
// argument left over is a usage error naming it and the command (fs's
// name), not a value silently dropped with the flags after it.
func parseNoArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fs.Usage, "%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// usageError reports a missing or extra argument: it prints the message
// and then usage to stderr, and returns an error that main does not print
// again and that exits with status 2.
func usageError(stderr io.Writer, usage func(), format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	fmt.Fprintf(stderr, "capirelay %v\n\n", err)
	usage()
	return fmt.Errorf("%w: %w", errUsage, err)
}

// oneArgument says what is wrong with args where exactly one argument,
// what, was wanted.
func oneArgument(what string, args []string) string {
	if len(args) == 0 || (len(args) == 1 && strings.TrimSpace(args[0]) == "") {
		return what + " is required"
	}
	return fmt.Sprintf("one %s, got %d arguments %q (quote a %s with spaces)", what, len(args), args, what)
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
