package dispatch

import "time"

// Backoff is the retry schedule of a failing batch: exponential from Base,
// doubling per attempt, capped at Max.
type Backoff struct {
	Base, Max time.Duration
}

// Next is when an item that has failed attempts times (at least 1) is
// tried again. It is exponential backoff with full jitter: the wait is
// uniform in [0, min(Max, Base·2^(attempts-1))), picked by r in [0, 1), so
// many batches failing together spread over the whole window instead of
// retrying in step. The wait is never shorter than Meta's Retry-After.
// Next is pure: the caller supplies the clock and the random number.
func (b Backoff) Next(attempts int, now time.Time, retryAfter time.Duration, r float64) time.Time {
	ceil := b.Base
	for i := 1; i < attempts && ceil < b.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
	wait := time.Duration(r * float64(ceil))
	return now.Add(max(wait, retryAfter))
}

func (d *Dispatcher) backoff() Backoff { return Backoff{Base: d.BackoffBase, Max: d.BackoffMax} }
