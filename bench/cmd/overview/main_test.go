package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A day written into a new SQLite store reads back whole: the timed run
// names every call, and -at's minutes add up to the events written (all
// but the few waiting to retry delivered or dead), oldest first.
func TestDayOnSQLite(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if err := run(ctx, []string{"-rows", "3000", "-dir", dir, "-rounds", "1"}, &out, &errs); err != nil {
		t.Fatalf("run = %v (%s)", err, errs.String())
	}
	for _, call := range []string{"Activity", "Errors", "DeliveryLatencies", "Depth"} {
		if !strings.Contains(out.String(), call+" ") {
			t.Errorf("output %q does not time %s", out.String(), call)
		}
	}
	// The next run reads the same store: no second fill.
	out.Reset()
	at := time.Now().Add(time.Minute).UnixMilli()
	if err := run(ctx, []string{"-dir", dir, "-at", fmt.Sprint(at)}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	var in, done, dead int
	last := int64(-1)
	for line := range strings.Lines(out.String()) {
		var m int64
		var i, d, x int
		if _, err := fmt.Sscan(line, &m, &i, &d, &x); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if m <= last || m%60000 != 0 {
			t.Fatalf("minute %d after %d: want whole minutes, oldest first", m, last)
		}
		last, in, done, dead = m, in+i, done+d, dead+x
	}
	var retrying int
	for i := range 3000 {
		if _, e := kind(i); e == "HTTP 500" {
			retrying++
		}
	}
	// The first minute of the day is cut at -at's time less 24 hours, so
	// a few of the oldest events may fall before it.
	if in < 2990 || in > 3000 || dead != 3 || done+dead+retrying < in-1 || done+dead+retrying > 3000 {
		t.Errorf("Activity: %d stored, %d delivered, %d dead (%d retrying); want the 3,000 written, 3 dead", in, done, dead, retrying)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-dir", "x", "-postgres", "postgres://localhost/x"},
		{"-dir", "x", "-rows", "0"},
	} {
		if err := run(t.Context(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) accepted, want refused", args)
		}
	}
}
