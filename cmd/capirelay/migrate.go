package main

import (
	"context"
	"fmt"
	"io"
)

// runMigrate applies the embedded migrations (serve does so too, under a
// lock, on start). Like serve, and unlike the other commands, it creates
// the data directory and the store when there are none.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("migrate", stderr, "migrate [--data-dir D] [--database-url URL]")
	var sf storeFlags
	sf.register(fs, getenv)
	if err := parseNoArgs(fs, args, stderr); err != nil {
		return err
	}
	st, err := sf.create(ctx, getenv)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "database is up to date")
	return st.Close()
}
