// Package identity stitches events of one person together. It learns from
// accepted events (pipeline.Observer): per (site, visitor), the SHA-256
// hashes of the match keys (em, ph, fn, ln, db, ge, ct, st, zp, country,
// external_id) and the latest fbp, fbc, IP address and user agent. Before
// hashing (pipeline.Enricher) it adds what is known to a later event of the
// same person that lacks it: a browser event by its visitor id, a server
// event by the visitor id, external_id, em or ph it names. An event's own
// values are never overwritten. Only hashes of match keys are stored;
// browser identifiers are sealed by the store.
package identity

import (
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// ExternalPrefix prefixes the pseudo visitor id of a person known only
// from server events, by the hash of their external_id.
const ExternalPrefix = "ext:"

// Service implements pipeline.Enricher and pipeline.Observer. It is safe
// for concurrent use.
//
// Learning is asynchronous and batched: Observe queues what an accepted
// event teaches, and Run writes queues of it in one transaction, so the
// ingest path pays no extra write. Until Run has loaded the filter of known
// visitors and hashes, Enrich asks the store about every event; afterwards
// only about those the filter may know. Other relay nodes' learning reaches
// the filter within RefreshEvery.
type Service struct {
	Store  store.Identities
	Logger *slog.Logger
	// RefreshEvery is how often the filter takes in what other nodes
	// learned (default 30s).
	RefreshEvery time.Duration

	cache   *cache
	queue   chan *store.Identity
	flushes chan chan struct{}
	filter  *filter
	ready   atomic.Bool
}

// queueSize bounds observations waiting to be written; past it Observe
// writes synchronously (back-pressure rather than loss).
const queueSize = 1 << 16

var (
	_ pipeline.Enricher = (*Service)(nil)
	_ pipeline.Observer = (*Service)(nil)
)

// New returns a service over st; logger nil means slog.Default().
func New(st store.Identities, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{Store: st, Logger: logger.With("component", "identity"),
		queue: make(chan *store.Identity, queueSize), flushes: make(chan chan struct{}), filter: newFilter(),
		cache: newCache(100_000)}
}

// Run loads the filter, then writes queued observations in batches until
// ctx ends (what is queued then is written first).
func (s *Service) Run(ctx context.Context) {
	every := s.RefreshEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	since, err := s.Store.KnownKeys(ctx, time.Time{}, s.filter.add)
	if err != nil {
		s.Logger.Error("load known identities; enrichment asks the store for every event", "err", err)
	} else {
		s.ready.Store(true)
	}
	refresh := time.NewTicker(every)
	defer refresh.Stop()
	var batch []*store.Identity
	var waiters []chan struct{}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case obs := <-s.queue:
					batch = append(batch, obs)
				default:
					s.write(context.WithoutCancel(ctx), batch)
					return
				}
			}
		case obs := <-s.queue:
			batch = append(batch, obs)
		gather:
			for len(batch) < 1000 {
				select {
				case obs := <-s.queue:
					batch = append(batch, obs)
				default:
					break gather
				}
			}
		case w := <-s.flushes:
			waiters = append(waiters, w)
		case <-refresh.C:
			// A little overlap: rows written during the last scan.
			next, err := s.Store.KnownKeys(ctx, since.Add(-time.Second), s.filter.add)
			if err == nil {
				since = next
			}
			continue
		}
		for len(s.queue) > 0 && len(batch) < 1000 {
			batch = append(batch, <-s.queue)
		}
		s.write(ctx, batch)
		batch = batch[:0]
		if len(s.queue) == 0 {
			for _, w := range waiters {
				close(w)
			}
			waiters = waiters[:0]
		}
	}
}

// Flush waits until what was observed before it is written. Run must be
// running.
func (s *Service) Flush(ctx context.Context) error {
	w := make(chan struct{})
	select {
	case s.flushes <- w:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case s.queue <- nil: // wake the writer even when nothing is queued
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) write(ctx context.Context, batch []*store.Identity) {
	ids := make([]*store.Identity, 0, len(batch))
	byVisitor := make(map[[2]string]*store.Identity, len(batch))
	for _, obs := range batch {
		if obs == nil {
			continue
		}
		if obs.VisitorID == "" {
			v, err := s.owner(ctx, obs)
			if err != nil {
				s.Logger.Warn("learn identity", "site", obs.SiteKey, "err", err)
				continue
			}
			if v == "" {
				continue
			}
			obs.VisitorID = v
		}
		if cur, ok := s.cache.identity(obs.SiteKey, obs.VisitorID); ok && cur != nil && !mergeChanges(cur, withoutChurn(obs, cur)) {
			continue // nothing new about a known person
		}
		// Several events of one person in a batch make one write; the
		// batch is in arrival order, so later ones are newer.
		k := [2]string{obs.SiteKey, obs.VisitorID}
		if prev := byVisitor[k]; prev != nil {
			prev.Merge(obs)
			continue
		}
		byVisitor[k] = obs
		obs.LikelyNew = !s.mayKnow(obs.SiteKey, "visitor", obs.VisitorID)
		ids = append(ids, obs)
	}
	if err := s.Store.LearnIdentities(ctx, ids); err != nil {
		s.Logger.Warn("learn identities", "count", len(ids), "err", err)
		return
	}
	for _, id := range ids {
		s.remember(id)
		s.cache.learned(id)
	}
}

// remember adds what an identity makes findable to the filter.
func (s *Service) remember(id *store.Identity) {
	s.filter.add(id.SiteKey, "visitor", id.VisitorID)
	for _, k := range store.IndexedKeys {
		for _, h := range id.Hashes[k] {
			s.filter.add(id.SiteKey, k, h)
		}
	}
}

// mayKnow reports whether the store may hold kind/value for a site.
func (s *Service) mayKnow(site, kind, value string) bool {
	return !s.ready.Load() || s.filter.has(site, kind, value)
}

// held reports whether the pipeline holds in for consent: such an event
// teaches nothing until consent is granted.
func held(in *pipeline.Input) bool {
	return in.Site.Consent == store.ConsentRequired && in.Source == pipeline.SourceBrowser &&
		in.Consent != pipeline.ConsentGranted
}

// Enrich adds the hashes and browser identifiers known for the person of
// in to the keys its event lacks. The person is found by the visitor id
// and by the hashes of em, ph and external_id: those of own, the event's
// user_data hashed, when not nil, else hashed here as the pipeline will.
// The values added are 64-hex hashes, which the normalizer passes through.
// The error is a store failure; the event is then left as it was.
func (s *Service) Enrich(ctx context.Context, in *pipeline.Input, own *normalize.UserData) error {
	if in.Event == nil || in.Site == nil || held(in) {
		return nil
	}
	ud := &in.Event.UserData
	var lbuf [8]lookup
	var hs []lookup
	if own != nil {
		hs = ownLookups(lbuf[:0], own)
	} else {
		hs = lookupHashes(lbuf[:0], in, ud)
	}
	var ibuf [4]*store.Identity
	ids, err := s.resolve(ctx, ibuf[:0], in.Site, in.VisitorID, hs)
	if err != nil || len(ids) == 0 {
		return err
	}
	for _, k := range store.IdentityKeys {
		dst := ud.List(k)
		if len(*dst) > 0 {
			continue
		}
		var add event.List
		for _, id := range ids {
			for _, h := range id.Hashes[k] {
				if len(add) < store.MaxIdentityValues && !slices.Contains(add, h) {
					add = append(add, h)
				}
			}
		}
		*dst = add
	}
	for _, id := range ids {
		fill(&ud.Fbp, id.Fbp)
		fill(&ud.Fbc, id.Fbc)
		fill(&ud.ClientIPAddress, id.IP)
		fill(&ud.ClientUserAgent, id.UA)
	}
	return nil
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// lookup is one indexed hash an event names.
type lookup struct{ key, hash string }

// lookupHashes appends to out the hashes of the raw external_id, em and ph
// of an event (before the pipeline hashes them) as the pipeline will, to
// find their owner.
func lookupHashes(out []lookup, in *pipeline.Input, ud *event.UserData) []lookup {
	region := in.Site.DefaultRegion
	if region == "" {
		region = in.Region
	}
	// As normalize.HashUserData: the event's own country wins.
	for _, c := range ud.Country {
		if code, err := normalize.Normalize(normalize.Country, c, normalize.Options{}); err == nil {
			region = code
			break
		}
	}
	o := normalize.Options{Region: region}
	for _, f := range [...]struct {
		key   string
		field normalize.Field
		vals  event.List
	}{
		{store.KeyExternalID, normalize.ExternalID, ud.ExternalID},
		{store.KeyEmail, normalize.Email, ud.Em},
		{store.KeyPhone, normalize.Phone, ud.Ph},
	} {
		for _, v := range f.vals {
			if h, err := normalize.Hash(f.field, v, o); err == nil && len(h) >= 64 {
				out = append(out, lookup{f.key, h[:64]})
			}
		}
	}
	return out
}

// ownLookups appends to out the hashes of external_id, em and ph of a
// hashed user_data, in the order of lookupHashes, each once.
func ownLookups(out []lookup, own *normalize.UserData) []lookup {
	for _, f := range [...]struct {
		key  string
		vals []string
	}{
		{store.KeyExternalID, own.ExternalID},
		{store.KeyEmail, own.Em},
		{store.KeyPhone, own.Ph},
	} {
		for _, h := range f.vals {
			if l := (lookup{f.key, h[:min(64, len(h))]}); len(h) >= 64 && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// resolve appends to ids the identities of a visitor and of the owners of
// the hashes, the visitor's first, each once. They are shared with the
// cache: read-only.
func (s *Service) resolve(ctx context.Context, ids []*store.Identity, site *store.Site, visitorID string, hs []lookup) ([]*store.Identity, error) {
	var seenBuf [8]string
	seen := seenBuf[:0] // a handful at most: a slice beats a map
	add := func(v string) error {
		if v == "" || slices.Contains(seen, v) {
			return nil
		}
		seen = append(seen, v)
		if !s.mayKnow(site.Key, "visitor", v) {
			return nil
		}
		id, err := s.lookupIdentity(ctx, site.Key, v)
		if err != nil || id == nil {
			return err
		}
		ids = append(ids, id)
		return nil
	}
	if err := add(visitorID); err != nil {
		return nil, err
	}
	for _, l := range hs {
		if !s.mayKnow(site.Key, l.key, l.hash) {
			continue
		}
		// Only the most recent owner: a value shared by many people (a
		// family phone, a role address) must not stitch them all together.
		v, err := s.lookupOwner(ctx, site.Key, l.key, l.hash)
		if err != nil {
			return nil, err
		}
		if err := add(v); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// Learn implements pipeline.Observer. It runs on a prepared event, whose
// user_data holds hashes, before its commit: what the event teaches is
// copied out of it now and recorded by the returned func once the event is
// accepted (nil when it teaches nothing). The person is the event's
// visitor; else the owner of its external_id, em or ph; else, with an
// external_id, a pseudo visitor for it. Failures are logged: the event is
// already stored.
func (s *Service) Learn(in *pipeline.Input) func(context.Context) {
	if in.Event == nil || in.Site == nil || held(in) {
		return nil
	}
	// A returning person whose event teaches nothing new costs nothing.
	if s.knownAlready(in) {
		return nil
	}
	obs := observation(in)
	if obs.VisitorID == "" && len(obs.Hashes) == 0 {
		return nil
	}
	return func(ctx context.Context) {
		select {
		case s.queue <- obs:
		default: // the writer is behind: write this one now
			s.write(ctx, []*store.Identity{obs})
		}
	}
}

// knownAlready reports, from the cache and the filter alone, that write
// would learn nothing from in: its person (the visitor, else the owner of a
// hash, found as owner does) has a cached identity that already holds what
// in teaches (as observation and withoutChurn make it), or in names no one
// write could find. false means: let write decide.
func (s *Service) knownAlready(in *pipeline.Input) bool {
	ud := &in.Event.UserData
	site, v := in.Site.Key, in.VisitorID
	if v == "" {
		var ok bool
		if v, ok = s.cachedOwner(site, ud); !ok {
			return false
		}
		if v == "" {
			return true // owner would find no one: write drops it
		}
	}
	cur, ok := s.cache.identity(site, v)
	if !ok || cur == nil {
		return false
	}
	for _, k := range store.IdentityKeys {
		if keyChanges(cur.Hashes[k], *ud.List(k), true) {
			return false
		}
	}
	ip, ua := ud.ClientIPAddress, ud.ClientUserAgent
	if cur.IP != "" {
		ip = ""
	}
	if cur.UA != "" {
		ua = ""
	}
	return !deviceChanges(cur, ud.Fbp, ud.Fbc, ip, ua)
}

// cachedOwner is owner for the hashes of an accepted event, from the cache
// only; ok is false when it would have to ask the store.
func (s *Service) cachedOwner(site string, ud *event.UserData) (visitor string, ok bool) {
	for _, k := range store.IndexedKeys {
		for _, h := range *ud.List(k) {
			if !isHash(h) || !s.mayKnow(site, k, h) {
				continue
			}
			v, ok := s.cache.owner(site, k, h)
			if !ok {
				return "", false
			}
			if v != "" {
				return v, true
			}
		}
	}
	for _, h := range ud.ExternalID {
		if isHash(h) {
			return ExternalPrefix + h, true
		}
	}
	return "", true
}

// withoutChurn is obs without the IP address and user agent when cur
// already has some: a returning visitor's address changes often and is
// refreshed when the cached identity expires, not on every event.
func withoutChurn(obs, cur *store.Identity) *store.Identity {
	p := *obs
	if cur.IP != "" {
		p.IP = ""
	}
	if cur.UA != "" {
		p.UA = ""
	}
	return &p
}

// observation is what an accepted event (user_data hashed) teaches.
func observation(in *pipeline.Input) *store.Identity {
	ud := &in.Event.UserData
	n, keys := 0, 0
	for _, k := range store.IdentityKeys {
		if l := len(*ud.List(k)); l > 0 {
			n, keys = n+l, keys+1
		}
	}
	// The event's strings may be cut from its whole request body (see
	// event.DecodeBatch): what the cache keeps is copied, so that it holds
	// a few bytes per person, not a request each.
	obs := &store.Identity{SiteKey: in.Site.Key, VisitorID: strings.Clone(in.VisitorID), Hashes: make(map[string][]string, keys),
		Fbp: strings.Clone(ud.Fbp), Fbc: strings.Clone(ud.Fbc), IP: strings.Clone(ud.ClientIPAddress), UA: strings.Clone(ud.ClientUserAgent)}
	// One array for all the hashes, each key's part capped.
	vals := make([]string, 0, n)
	for _, k := range store.IdentityKeys {
		start := len(vals)
		for _, v := range *ud.List(k) {
			// Only pure hashes are kept; anything else is never stored.
			if isHash(v) && !slices.Contains(vals[start:], v) {
				vals = append(vals, v)
			}
		}
		if len(vals) > start {
			obs.Hashes[k] = vals[start:len(vals):len(vals)]
		}
	}
	// The hashes are copied too, into one string.
	all := make([]byte, 0, 64*len(vals))
	for _, v := range vals {
		all = append(all, v...)
	}
	copied := string(all)
	for i, v := range vals {
		vals[i], copied = copied[:len(v)], copied[len(v):]
	}
	return obs
}

// owner finds the visitor of an event that names none.
func (s *Service) owner(ctx context.Context, obs *store.Identity) (string, error) {
	for _, k := range store.IndexedKeys {
		for _, h := range obs.Hashes[k] {
			if !s.mayKnow(obs.SiteKey, k, h) {
				continue
			}
			v, err := s.lookupOwner(ctx, obs.SiteKey, k, h)
			if err != nil {
				return "", err
			}
			if v != "" {
				return v, nil
			}
		}
	}
	if ext := obs.Hashes[store.KeyExternalID]; len(ext) > 0 {
		return ExternalPrefix + ext[0], nil
	}
	return "", nil
}

// lowerHex marks the bytes of a hash: 0-9 and a-f.
var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

// isHash reports whether s is 64 lowercase hex digits. It runs for every
// value of every accepted event (several times), so it checks 8 bytes at
// a time instead of looking each one up in lowerHex; FuzzIsHash checks the
// two agree.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// in reports, as the high bit of each byte, whether the byte of x
	// (all below 0x80) lies in [lo, hi]: x + (0x80-lo) sets the bit when
	// it is at least lo, x + (0x7f-hi) when it is above hi; no byte carries
	// into the next.
	in := func(x, lo, hi uint64) uint64 {
		return (x + (0x80-lo)*ones) &^ (x + (0x7f-hi)*ones) & highs
	}
	for i := 0; i < 64; i += 8 {
		x := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
		if x&highs != 0 || in(x, '0', '9')|in(x, 'a', 'f') != highs {
			return false
		}
	}
	return true
}
