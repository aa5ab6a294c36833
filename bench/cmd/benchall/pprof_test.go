package main

import (
	"bytes"
	"context"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestIsIdentityFunc(t *testing.T) {
	for fn, want := range map[string]bool{
		"github.com/capirelay/capirelay/internal/identity.(*Service).write":          true,
		"github.com/capirelay/capirelay/internal/identity.(*filter).mayKnow":         true,
		"github.com/capirelay/capirelay/internal/store/sqlite.(*DB).LearnIdentities": true,
		"github.com/capirelay/capirelay/internal/store/sqlite.loadIdentity":          true,
		"github.com/capirelay/capirelay/internal/store/postgres.(*DB).KnownKeys":     true,
		"github.com/capirelay/capirelay/internal/store/sqlite.(*DB).Enqueue":         false,
		"github.com/capirelay/capirelay/internal/pipeline.(*Pipeline).Prepare":       false,
		"github.com/capirelay/capirelay/internal/normalize.HashUserData":             false,
		"runtime.memmove": false,
	} {
		if got := isIdentityFunc(fn); got != want {
			t.Errorf("isIdentityFunc(%q) = %v, want %v", fn, got, want)
		}
	}
}

//go:noinline
func spin(d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		n++
	}
	return n
}

// TestParseCPUProfile profiles this process spinning in a goroutine
// labelled bench=loadgen and in an unlabelled one, and reads the
// profile back: both are found, and the split adds up.
func TestParseCPUProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skip("profiling unavailable:", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	var spun atomic.Int64 // keeps the spinning observable
	go pprof.Do(context.Background(), pprof.Labels("bench", "loadgen"), func(context.Context) {
		defer wg.Done()
		spun.Add(int64(spin(400 * time.Millisecond)))
	})
	go func() { defer wg.Done(); spun.Add(int64(spin(400 * time.Millisecond))) }()
	wg.Wait()
	pprof.StopCPUProfile()
	p, err := parseCPUProfile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	s := p.split()
	if s.loadgen == 0 || s.relay == 0 || s.total != s.relay+s.loadgen+s.sink || s.identity != 0 {
		t.Fatalf("split %+v", s)
	}
	found := false
	for _, x := range p.samples {
		for _, fn := range x.stack {
			found = found || fn == "github.com/capirelay/capirelay/bench/cmd/benchall.spin"
		}
	}
	if !found {
		t.Error("no sample names spin")
	}
	if top := p.top(5); !bytes.Contains([]byte(top), []byte("benchall.spin")) {
		t.Errorf("top:\n%s", top)
	}
}
