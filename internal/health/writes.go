package health

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// Writes follows whether the store accepts writes, from the outcomes of
// ingest's commits: a disk that is full or read-only refuses commits while
// reads (and so a ping) still work. Refusals are logged once per LogEvery
// with how many there were, not once each: a busy relay on a full disk
// refuses thousands a minute. It is safe for concurrent use.
type Writes struct {
	Logger *slog.Logger
	// LogEvery is the shortest time between two log lines about refusals
	// (DefaultLogEvery when zero).
	LogEvery time.Duration
	// Hold is how long after a refusal Ready fails (DefaultHold when
	// zero). Successes do not end it sooner: on a nearly full disk small
	// writes still fit while most are refused.
	Hold time.Duration
	Now  func() time.Time // nil: time.Now

	mu          sync.Mutex
	lastRefusal time.Time
	unlogged    int // refusals since the last line
	sinceOK     int // refusals since the recovery was last logged
	lastLog     time.Time
}

// Defaults of Writes.
const (
	DefaultLogEvery = 10 * time.Second
	DefaultHold     = 10 * time.Second
)

// ErrRefusingWrites is Ready's answer while the store refuses writes.
var ErrRefusingWrites = errors.New("the store refuses writes (disk full or read-only?)")

func (w *Writes) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Writes) hold() time.Duration {
	if w.Hold <= 0 {
		return DefaultHold
	}
	return w.Hold
}

// Refused records a commit the store refused; errors other than
// store.ErrUnavailable (a cancelled request …) say nothing of the store
// and are ignored.
func (w *Writes) Refused(err error) {
	if !errors.Is(err, store.ErrUnavailable) {
		return
	}
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastRefusal = now
	w.unlogged++
	w.sinceOK++
	every := w.LogEvery
	if every <= 0 {
		every = DefaultLogEvery
	}
	if w.Logger != nil && (w.lastLog.IsZero() || now.Sub(w.lastLog) >= every) {
		w.Logger.Error("store refuses writes; ingest answers 503", "refused", w.unlogged, "err", err)
		w.unlogged, w.lastLog = 0, now
	}
}

// Stored records a commit the store took: once no write was refused for
// Hold, the recovery is logged with the count of refusals.
func (w *Writes) Stored() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sinceOK == 0 || w.now().Sub(w.lastRefusal) < w.hold() {
		return
	}
	if w.Logger != nil {
		w.Logger.Info("store accepts writes again", "refused", w.sinceOK)
	}
	w.sinceOK, w.unlogged, w.lastLog = 0, 0, time.Time{}
}

// Ready fails for Hold after a refused write.
func (w *Writes) Ready() error {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lastRefusal.IsZero() && now.Sub(w.lastRefusal) < w.hold() {
		return ErrRefusingWrites
	}
	return nil
}
