package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/capi"
)

// runSandbox prints what the sandbox destination received for a site, one
// event per line, each as it would have reached Meta except for
// client_ip_address, shortened to its network as the dashboard shows it.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 || args[0] != "tail" {
		fmt.Fprint(stderr, "Usage: capirelay sandbox tail --site KEY [--follow] [--requests]\n")
		return errUsage
	}
	fs := newFlagSet("sandbox tail", stderr, "sandbox tail --site KEY [--follow] [--requests]")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	follow := fs.Bool("follow", false, "keep printing new payloads until interrupted")
	requests := fs.Bool("requests", false, "print whole request bodies instead of one event per line (client_ip_address is shortened to its /24 or /48 either way)")
	if err := parseNoArgs(fs, args[1:], stderr); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("sandbox tail: --site is required")
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Site(ctx, *key); err != nil {
		return fmt.Errorf("sandbox tail: %w", err)
	}
	var after int64
	for {
		recs, err := st.SandboxRecords(ctx, *key, after, 500)
		if err != nil {
			return err
		}
		for _, r := range recs {
			after = r.ID
			if *requests {
				p, err := admin.DisplayPayload(r.Payload)
				if err != nil {
					return fmt.Errorf("sandbox record %d: %w", r.ID, err)
				}
				fmt.Fprintf(stdout, "%s\n", p)
				continue
			}
			var req capi.Request
			if err := json.Unmarshal(r.Payload, &req); err != nil {
				return fmt.Errorf("sandbox record %d: %w", r.ID, err)
			}
			for _, ev := range req.Data {
				p, err := admin.DisplayPayload(ev)
				if err != nil {
					return fmt.Errorf("sandbox record %d: %w", r.ID, err)
				}
				fmt.Fprintf(stdout, "%s\n", p)
			}
		}
		if len(recs) == 500 {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
