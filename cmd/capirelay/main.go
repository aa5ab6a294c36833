// Command capirelay is a self-hosted relay from a first-party tag and
// customer backends to Meta's Conversions API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		os.Exit(report(os.Stderr, err))
	}
}

// report prints err, unless its command printed it already with the
// usage, and returns the exit status.
func report(stderr io.Writer, err error) int {
	if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errUsage) {
		fmt.Fprintln(stderr, "capirelay:", err)
	}
	return exitCode(err)
}

// errUsage marks an error whose message was already printed with the usage.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usage = `capirelay: first-party tag and server-side delivery to Meta's Conversions API

Usage:
  capirelay serve [flags]                 run the relay (SQLite under ./data, sandbox without a token)
  capirelay site add|list|set|set-token   manage sites
  capirelay sandbox tail --site KEY       print payloads the sandbox received, as JSON lines
  capirelay hash --field F VALUE          normalize and hash one value like the relay does
  capirelay leads export|list|webhook-secret   partial leads
  capirelay forget --email X|--phone X|--visitor ID   erase a person
  capirelay admin set-password|create-token|list-tokens|revoke-token   dashboard access
  capirelay import --site KEY FILE        offline conversions (CSV or JSON lines)
  capirelay validate FILE.json            check a Meta payload like Meta's Payload Helper
  capirelay migrate                       create the store, or apply database migrations
  capirelay version

Only serve and migrate create a data directory (--data-dir, CAPIRELAY_DATA_DIR, default ./data);
the other commands work on one a relay made.
Run 'capirelay COMMAND -h' for a command's flags.
`

// env reads the environment; tests pass their own.
type getenvFunc = func(string) string

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr, getenv)
	case "site", "sites":
		return runSite(ctx, rest, stdin, stdout, stderr, getenv)
	case "sandbox":
		return runSandbox(ctx, rest, stdout, stderr, getenv)
	case "hash":
		return runHash(ctx, rest, stdin, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr, getenv)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "capirelay", appVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return runMore(ctx, cmd, rest, stdin, stdout, stderr, getenv)
}
