package sharedtest

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, failing the test with
// "timed out waiting for what" after d.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
