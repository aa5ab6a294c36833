package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// Results is what became of each Input of a Submit, in order.
type Results []Result

// Summary counts a submission's Results by status: what a front end
// answers and counts.
type Summary struct {
	Accepted, Duplicates, Rejected, Dropped, Withheld int
	// FirstRejected is the index of the first rejected input, -1 when none
	// was; its Result's Err is the reason, a *event.FieldError naming the
	// field by its path.
	FirstRejected int
}

// Summary counts rs.
func (rs Results) Summary() Summary {
	s := Summary{FirstRejected: -1}
	for i := range rs {
		switch rs[i].Status {
		case Accepted:
			s.Accepted++
		case Duplicate:
			s.Duplicates++
		case Rejected:
			s.Rejected++
			if s.FirstRejected < 0 {
				s.FirstRejected = i
			}
		case Dropped:
			s.Dropped++
		case Withheld:
			s.Withheld++
		}
	}
	return s
}

// Option changes one submission from the default, in which Submit takes
// a slot of the gate itself and commits every valid event whatever became
// of the others. (A value, not a func: an option must not cost a request
// an allocation.)
type Option struct {
	slot         *Slot
	allOrNothing bool
}

// InSlot is for a caller that already holds slot (it decoded its request
// inside the gate, which is CPU-bound work too): Submit prepares in it
// instead of waiting for another, and leaves it before the commit.
func InSlot(slot *Slot) Option { return Option{slot: slot} }

// AllOrNothing(true) commits nothing when an event is rejected; the valid
// events are Withheld. It is the Graph API's rule, which its compatible
// endpoint keeps.
func AllOrNothing(on bool) Option { return Option{allOrNothing: on} }

// Submit is the one way events enter the outbox. It waits for a slot of
// p.Gate (the site of the first input takes its turn) unless the caller
// holds one (InSlot); prepares every input in it (validate, enrich,
// normalize, hash, consent), yielding the slot to other sites' requests
// between events; leaves the slot; and commits the events it kept in one
// durable write, waiting for it, then leaves the Work place Enter took.
// All inputs are of one site. A nil p.Gate admits everyone at once.
//
// Per-event outcomes are in the Results (Summary counts them); the error
// is set only when nothing was stored: the gate's wait ended with ctx, or
// the store could not commit (ErrStore). Then the caller must answer 5xx.
func (p *Pipeline) Submit(ctx context.Context, ins []Input, opts ...Option) (Results, error) {
	var o Option
	for _, opt := range opts {
		o.slot = cmp.Or(opt.slot, o.slot)
		o.allOrNothing = o.allOrNothing || opt.allOrNothing
	}
	slot := o.slot
	if slot == nil {
		if len(ins) == 0 {
			return Results{}, nil
		}
		slot = &Slot{}
		if err := p.enter(ctx, slot, ins[0].Site.Key); err != nil {
			return nil, err
		}
	}
	defer slot.Leave() // the Work place, if Enter took one
	prepared := p.prepareAll(ctx, ins, slot.yield)
	slot.leaveGate()
	if o.allOrNothing && prepared.withhold() {
		return prepared.results, nil
	}
	return prepared.Commit(ctx)
}

// Slot is a place in p.Gate, held from Pipeline.Enter until Leave, and,
// when Enter took it, a place in p.Work. Use it through a pointer;
// Submit(InSlot) leaves both (the gate's before the commit).
type Slot struct {
	gate  *Gate
	work  *Gate // the Work place's gate while held, else nil
	site  string
	since time.Time // when the slot was taken or last given back
	held  bool
}

// Enter waits for a place of p.Work, then for a slot of p.Gate, for a
// request of site ("" for one not yet authenticated), for a caller that
// does CPU-bound work of its own before Submit: decoding its request.
// Leave it when done, which Submit does; a deferred Leave after Submit
// does nothing. On an error nothing is held. (Enter is small enough to
// inline, so that a caller's slot needs no allocation.)
func (p *Pipeline) Enter(ctx context.Context, site string) (*Slot, error) {
	s := new(Slot)
	return s, p.enterWork(ctx, s, site)
}

func (p *Pipeline) enterWork(ctx context.Context, s *Slot, site string) error {
	if p.Work != nil {
		if err := p.Work.Enter(ctx, site); err != nil {
			return fmt.Errorf("wait for a place to work: %w", err)
		}
	}
	if err := p.enter(ctx, s, site); err != nil {
		p.Work.Leave()
		return err
	}
	s.work = p.Work
	return nil
}

func (p *Pipeline) enter(ctx context.Context, s *Slot, site string) error {
	if err := p.Gate.Enter(ctx, site); err != nil {
		return fmt.Errorf("wait for the ingest gate: %w", err)
	}
	*s = Slot{gate: p.Gate, site: site, since: time.Now(), held: true}
	return nil
}

// yield lets other sites' requests go first once s has been held for a
// quantum while they wait (Gate.Yield).
func (s *Slot) yield() { s.gate.Yield(s.site, &s.since) }

// Leave gives back what s holds: its slot of the gate and its Work place.
// Once left (or nil) it does nothing.
func (s *Slot) Leave() {
	if s == nil {
		return
	}
	s.leaveGate()
	if s.work != nil {
		w := s.work
		s.work = nil
		w.Leave()
	}
}

// leaveGate gives back the slot of the gate only.
func (s *Slot) leaveGate() {
	if !s.held {
		return
	}
	s.held = false
	s.gate.Leave()
}

// Releaser releases the events held for a visitor's consent (a site whose
// consent mode is "required" stores a browser event sent before an answer
// as held): a grant makes them deliverable, fill completing each payload
// with what the grant carries (fbp, fbc); a denial deletes them. It is
// all a collector needs of the queue beside Submit; *Pipeline is one.
type Releaser interface {
	ReleaseHeld(ctx context.Context, site, visitorID string, granted bool, fill store.HeldFill) (int, error)
}

var _ Releaser = (*Pipeline)(nil)

// ReleaseHeld releases the events of site held for visitorID (Releaser)
// and returns how many; an error wraps ErrStore.
func (p *Pipeline) ReleaseHeld(ctx context.Context, site, visitorID string, granted bool, fill store.HeldFill) (int, error) {
	n, err := p.Store.ReleaseHeld(ctx, site, visitorID, granted, fill)
	if err != nil {
		return 0, fmt.Errorf("%w: release held events: %w", ErrStore, err)
	}
	return n, nil
}
