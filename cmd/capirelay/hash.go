package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/capirelay/capirelay/internal/normalize"
)

const hashUsage = `Usage:
  capirelay hash --field F [--country CC] [--region CC] [--date-order auto|mdy|dmy] VALUE
  capirelay hash --jsonl [--region CC] [--date-order ...] < in.jsonl > out.jsonl

Normalizes and hashes customer data exactly as the relay does for user_data
(internal/normalize). Fields: em ph fn ln db ge ct st zp country external_id.

One value: prints two lines,
  normalized: <plaintext that is hashed>   ("(pre-hashed)" when passed through)
  hash: <what goes into user_data[F]>
and exits non-zero, naming the field and the reason, when the value would be
dropped.

--jsonl reads one JSON object per line from stdin,
  {"id": ..., "field": "ph", "input": "(650) 555-1212", "country": "us"}
and writes one line per input line, in order:
  {"id": ..., "normalized": "16505551212", "hash": "e323…"}
or {"id": ..., "error": "..."} when the value is dropped or the line is bad.
"country" is the value's own country (as the event's user_data.country);
--region is the site default used when it is absent.

Flags:
`

// runHash implements "capirelay hash". It returns an error (the caller exits
// non-zero) for bad usage and, in single-value mode, for a dropped value;
// in --jsonl mode per-line problems are reported on stdout instead.
func runHash(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, hashUsage)
		fs.PrintDefaults()
	}
	field := fs.String("field", "", "user_data key: em ph fn ln db ge ct st zp country external_id")
	country := fs.String("country", "", "the value's own country (name or ISO code); region for ph, st, zp, db")
	region := fs.String("region", "", "site default region (ISO alpha-2) when the value has no country")
	order := fs.String("date-order", "auto", "ambiguous db day/month order: auto, mdy or dmy")
	jsonl := fs.Bool("jsonl", false, "read JSON lines from stdin, write results to stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := normalize.Options{Region: *region}
	switch *order {
	case "auto", "":
	case "mdy":
		opts.DateOrder = normalize.DateOrderMonthFirst
	case "dmy":
		opts.DateOrder = normalize.DateOrderDayFirst
	default:
		return usageError(stderr, fs.Usage, "hash: --date-order %q: want auto, mdy or dmy", *order)
	}
	if *jsonl {
		if *field != "" || *country != "" || fs.NArg() > 0 {
			return usageError(stderr, fs.Usage, "hash: --jsonl takes no --field, --country or VALUE; they come from each line")
		}
		return hashLines(ctx, stdin, stdout, opts)
	}
	f, ok := normalize.ParseField(*field)
	if !ok {
		return usageError(stderr, fs.Usage, "hash: --field %q: want one of em ph fn ln db ge ct st zp country external_id", *field)
	}
	if fs.NArg() != 1 {
		return usageError(stderr, fs.Usage, "hash: want exactly one VALUE")
	}
	res := hashOne(f, fs.Arg(0), *country, opts)
	if res.Error != "" {
		return fmt.Errorf("hash %s: %s", f, res.Error)
	}
	norm := res.Normalized
	if norm == "" {
		norm = "(pre-hashed)"
	}
	_, err := fmt.Fprintf(stdout, "normalized: %s\nhash: %s\n", norm, res.Hash)
	return err
}

// hashResult is one output line of --jsonl.
type hashResult struct {
	ID         json.RawMessage `json:"id,omitempty"`
	Normalized string          `json:"normalized,omitempty"`
	Hash       string          `json:"hash,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// hashOne normalizes and hashes one value the way normalize.HashUserData
// does: the value's own country, when valid, is the region.
func hashOne(f normalize.Field, input, country string, opts normalize.Options) hashResult {
	if country != "" {
		cc, err := normalize.Normalize(normalize.Country, country, normalize.Options{})
		if err != nil {
			return hashResult{Error: fmt.Sprintf("country %q: %v", country, err)}
		}
		opts.Region = cc
	}
	h, err := normalize.Hash(f, input, opts)
	if err != nil {
		return hashResult{Error: err.Error()}
	}
	res := hashResult{Hash: h}
	if n, err := normalize.Normalize(f, input, opts); err == nil && !isPassThrough(input, h) {
		res.Normalized = n
	}
	return res
}

// isPassThrough reports whether Hash forwarded input as already hashed.
func isPassThrough(input, h string) bool {
	return strings.EqualFold(strings.TrimSpace(input), h) || strings.Contains(h, ".")
}

// hashLine is one input line of --jsonl.
type hashLine struct {
	ID      json.RawMessage `json:"id"`
	Field   string          `json:"field"`
	Input   *string         `json:"input"`
	Country string          `json:"country"`
}

func hashLines(ctx context.Context, stdin io.Reader, stdout io.Writer, opts normalize.Options) error {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("hash: line %d: %w", n, err)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var in hashLine
		var res hashResult
		if err := json.Unmarshal([]byte(line), &in); err != nil {
			res.Error = fmt.Sprintf("line %d: bad JSON: %v", n, err)
		} else if f, ok := normalize.ParseField(in.Field); !ok {
			res.Error = fmt.Sprintf("line %d: unknown field %q", n, in.Field)
		} else if in.Input == nil {
			res.Error = fmt.Sprintf("line %d: missing input", n)
		} else {
			res = hashOne(f, *in.Input, in.Country, opts)
		}
		res.ID = in.ID
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("hash: write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("hash: read stdin: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("hash: write: %w", err)
	}
	return nil
}
