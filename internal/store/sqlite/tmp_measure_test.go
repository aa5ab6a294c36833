package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

func ioWchar() int64 {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "wchar:") {
			var n int64
			fmt.Sscan(strings.TrimPrefix(l, "wchar:"), &n)
			return n
		}
	}
	return 0
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(0, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestTmpMeasure(t *testing.T) {
	box, _ := secret.New(bytes.Repeat([]byte{1}, secret.KeySize))
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), box)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	payload := bytes.Repeat([]byte("x"), 900)
	for _, per := range []int{1, 1, 100} {
		const workers = 64
		total := 64000
		w0, c0, t0 := ioWchar(), cpu(), time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				evs := make([]store.NewEvent, per)
				for i := 0; i < total/workers/per; i++ {
					for j := range evs {
						evs[j] = store.NewEvent{SiteKey: "s", EventName: "PageView", EventID: fmt.Sprintf("%d-%d-%d-%d-%d", t0.UnixNano(), per, w, i, j), EventTime: time.Now(),
							Payload: payload, VisitorID: fmt.Sprintf("%032x", (w*7919+i*104729)%100000), Source: "browser"}
					}
					if _, err := db.Enqueue(context.Background(), evs); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(t0)
		t.Logf("per=%d: %d events in %v (%.0f/s), written %.1f KB/event, cpu %.1f µs/event", per, total, el, float64(total)/el.Seconds(),
			float64(ioWchar()-w0)/float64(total)/1024, float64((cpu()-c0).Microseconds())/float64(total))
	}
}
