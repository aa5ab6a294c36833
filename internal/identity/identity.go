// Package identity stitches events of one person together. It learns from
// accepted events (Learn, a pipeline.Observer): per person record — a
// browser's visitor id, or for a person known only from server events a
// pseudo visitor named by their external_id, else by their em — the
// SHA-256 hashes of the match keys (em, ph, fn, ln, db, ge, ct, st, zp,
// country, external_id) and the latest fbp, fbc and, from website events,
// IP address and user agent.
// Before hashing (Enrich, a pipeline.Enricher) it adds what one record
// knows to a later event of the same person that lacks it.
//
// Events are linked only by strong keys: the tag's visitor id, external_id
// and em. A phone, a name, a city or a zip code never links (a family
// shares a phone; a shop's counter has one city). When an event's keys
// point at two or more records, or its record holds another value of a
// strong key the event carries, nothing is added (and it is counted): one
// person's data is never attached to another person's event, and an
// event's keys always come from exactly one record. A browser's IP address
// and user agent are added only to website events; an fbc only while its
// click is inside the site's click window. An event's own values are never
// overwritten. Only hashes of match keys are stored; browser identifiers
// are sealed by the store.
package identity

import (
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// ExternalPrefix prefixes the pseudo visitor id of a person known only
// from server events, by the hash of their external_id.
const ExternalPrefix = store.PseudoPrefix

// EmailPrefix prefixes the pseudo visitor id of a person known only from
// server events that named no external_id, by the hash of their em.
const EmailPrefix = store.EmailPseudoPrefix

// isPseudo reports whether a record's visitor id names no browser.
func isPseudo(visitor string) bool {
	return strings.HasPrefix(visitor, ExternalPrefix) || isEmailPseudo(visitor)
}

// isEmailPseudo reports whether a record's visitor id is an email's.
func isEmailPseudo(visitor string) bool { return strings.HasPrefix(visitor, EmailPrefix) }

// Service implements pipeline.Enricher and pipeline.Observer. It is safe
// for concurrent use.
//
// Learning is asynchronous and batched: the func Learn returns queues what
// an accepted event teaches, and Run writes what is queued in batches, so
// the ingest path pays no extra write. Until Run has loaded the filter of
// known visitors and hashes, Enrich asks the store about every event;
// afterwards only about those the filter may know. Other relay nodes'
// learning reaches the filter within RefreshEvery.
type Service struct {
	Store  store.Identities
	Logger *slog.Logger
	// RefreshEvery is how often the filter takes in what other nodes
	// learned (default 30s).
	RefreshEvery time.Duration

	cache   *cache
	queue   chan packed
	flushes chan chan struct{}
	filter  *filter
	ready   atomic.Bool

	// ambiguous counts events left as they were because their keys
	// pointed at several people, or at a record of someone else.
	ambiguous prometheus.Counter
	// dropped counts observations not learned because the queue was full.
	dropped prometheus.Counter
	// dropLater is Learn's func for an observation dropped before it was
	// packed: it counts the drop once the event is accepted.
	dropLater func(context.Context)
}

// queueSize bounds observations waiting to be written (packed, about 600
// bytes each, so some 2.5 MB). Past it the writer is behind the ingest rate and Learn's
// func drops the observation and counts it (identity_learn_dropped_total):
// learning is an enrichment, and a missed one costs a match, while holding
// the request (or 160 MB of queued observations, as a 64 Ki queue did on
// unique-customer traffic) would cost every event its ingest rate.
const queueSize = 1 << 12

var (
	_ pipeline.Enricher = (*Service)(nil)
	_ pipeline.Observer = (*Service)(nil)
)

// New returns a service over st; logger nil means slog.Default().
func New(st store.Identities, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{Store: st, Logger: logger.With("component", "identity"),
		queue: make(chan packed, queueSize), flushes: make(chan chan struct{}), filter: newFilter(),
		cache: newCache(CacheRecords, CacheOwners),
		ambiguous: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Name: "identity_ambiguous_total",
			Help: "Events identity stitching left as they were because their strong keys pointed at several people, or at a record holding another value of one of them."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "capirelay", Subsystem: "identity", Name: "learn_dropped_total",
			Help: "Accepted events identity did not learn from because its writer was behind ingest (the queue was full); their later events miss that enrichment."})}
	s.dropLater = func(context.Context) { s.dropped.Inc() }
	return s
}

// Run loads the filter, then writes queued observations in batches until
// ctx ends (what is queued then is written first).
func (s *Service) Run(ctx context.Context) {
	every := s.RefreshEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	since, err := s.Store.KnownKeys(ctx, time.Time{}, s.know)
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
					batch = append(batch, obs.identity())
				default:
					s.write(context.WithoutCancel(ctx), batch)
					return
				}
			}
		case obs := <-s.queue:
			batch = append(batch, obs.identity())
		gather:
			for len(batch) < 1000 {
				select {
				case obs := <-s.queue:
					batch = append(batch, obs.identity())
				default:
					break gather
				}
			}
		case w := <-s.flushes:
			waiters = append(waiters, w)
		case <-refresh.C:
			// A little overlap: rows written during the last scan.
			next, err := s.Store.KnownKeys(ctx, since.Add(-time.Second), s.know)
			if err == nil {
				since = next
			}
			continue
		}
		for len(s.queue) > 0 && len(batch) < 1000 {
			batch = append(batch, (<-s.queue).identity())
		}
		began := time.Now()
		// A batch is a few milliseconds of work: one begun when the relay
		// shuts down is finished, not lost to a cancelled context.
		s.write(context.WithoutCancel(ctx), batch)
		batch = batch[:0]
		if len(s.queue) == 0 {
			for _, w := range waiters {
				close(w)
			}
			waiters = waiters[:0]
		}
		if pause := restAfter(time.Since(began), len(s.queue)); pause > 0 && len(waiters) == 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// restAfter is how long the writer rests after a write that took d, with
// queued observations still waiting. Below half a queue it keeps up and
// never rests. Past it ingest outruns learning, and learning takes a CPU
// (and its store's writes) that ingest and delivery need: the writer then
// rests ten times as long as it wrote (up to half a second), and Learn
// drops and counts what does not fit in the queue (see queueSize).
//
// It rested three times as long until the identity file's keys became
// 64-bit (store/sqlite's migration 3), which made a new person about
// three times cheaper to write. Realistic /v1/events at 20,000 events/s,
// the binary on 2 CPUs, six alternating runs of each: p99 32–58 ms with
// 2,200–2,300 people learned a second (the text keys at three times:
// 2,100–2,200), against 60–84 ms and 3,500–3,800 a second at three times,
// and 38–58 ms and 2,600–2,900 at six times.
func restAfter(d time.Duration, queued int) time.Duration {
	if queued < queueSize/2 {
		return 0
	}
	return min(10*d, 500*time.Millisecond)
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
	case s.queue <- "": // wake the writer even when nothing is queued
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
		// Several events of one person in a batch make one write; the
		// batch is in arrival order, so later ones are newer.
		k := [2]string{obs.SiteKey, obs.VisitorID}
		if prev := byVisitor[k]; prev != nil {
			prev.Merge(obs)
			continue
		}
		obs.LikelyNew = !s.mayKnowRecord(obs.SiteKey, obs.VisitorID)
		cur, err := s.current(ctx, obs)
		if err != nil {
			s.Logger.Warn("learn identity", "site", obs.SiteKey, "err", err)
			continue
		}
		if cur != nil && (cur.ConflictsWith(obs) || !mergeChanges(cur, withoutChurn(obs, cur))) {
			continue // someone else's keys, or nothing new about a known person
		}
		byVisitor[k] = obs
		ids = append(ids, obs)
	}
	if err := s.Store.LearnIdentities(ctx, ids); err != nil {
		s.Logger.Warn("learn identities", "count", len(ids), "err", err)
		return
	}
	for _, id := range ids {
		// The cache first: it asks the filter what was unknown before.
		s.cache.learned(id, s.mayKnow)
		s.remember(id)
	}
}

// current is the record obs is about to be merged into, nil when there is
// none (or the filter says there is none); the cache keeps it.
func (s *Service) current(ctx context.Context, obs *store.Identity) (*store.Identity, error) {
	if cur, ok := s.cache.identity(obs.SiteKey, obs.VisitorID); ok {
		return cur, nil
	}
	if obs.LikelyNew {
		return nil, nil
	}
	return s.lookupIdentity(ctx, obs.SiteKey, obs.VisitorID)
}

// know adds what the store reports known (KnownKeys) to the filter: the
// visitors of browsers and the strong keys' hashes, which are all that
// Enrich and learning look up (a pseudo visitor is found by its
// external_id; a phone links nothing).
func (s *Service) know(site, kind, value string) {
	switch {
	case kind == "visitor" && strings.HasPrefix(value, ExternalPrefix):
		// Found by its external_id, which has no index row of its own.
		s.filter.add(site, store.KeyExternalID, value[len(ExternalPrefix):])
	case kind == "visitor" || slices.Contains(store.StrongKeys, kind):
		s.filter.add(site, kind, value)
	}
}

// remember adds what an identity makes findable to the filter.
func (s *Service) remember(id *store.Identity) {
	s.know(id.SiteKey, "visitor", id.VisitorID)
	for _, k := range store.StrongKeys {
		for _, h := range id.Hashes[k] {
			s.filter.add(id.SiteKey, k, h)
		}
	}
}

// mayKnow reports whether the store may hold kind/value for a site.
func (s *Service) mayKnow(site, kind, value string) bool {
	return !s.ready.Load() || s.filter.has(site, kind, value)
}

// mayKnowRecord reports whether the store may hold the record of a visitor.
func (s *Service) mayKnowRecord(site, visitor string) bool {
	if ext, ok := strings.CutPrefix(visitor, ExternalPrefix); ok {
		return s.mayKnow(site, store.KeyExternalID, ext)
	}
	return s.mayKnow(site, "visitor", visitor)
}

// held reports whether the pipeline holds in for consent: such an event
// teaches nothing until consent is granted.
func held(in *pipeline.Input) bool {
	return in.Site.Consent == store.ConsentRequired && in.Source == pipeline.SourceBrowser &&
		in.Consent != pipeline.ConsentGranted
}

// Enrich adds what the record of in's person knows to the keys its event
// lacks (see the package comment for which record, and what is added).
// The person is found by the visitor id and, with the site's identity mode
// full, by the hashes of external_id and em: those of own, the event's
// user_data hashed, when not nil, else hashed here as the pipeline will.
// The values added are 64-hex hashes, which the normalizer passes through;
// in.Enriched names the keys added. The error is a store failure; the event
// is then left as it was.
func (s *Service) Enrich(ctx context.Context, in *pipeline.Input, own *normalize.UserData) error {
	if in.Event == nil || in.Site == nil || held(in) {
		return nil
	}
	mode := in.Site.IdentityMode()
	if mode == store.IdentityOff {
		return nil
	}
	var lbuf [8]lookup
	var hs []lookup
	if own != nil {
		hs = ownLookups(lbuf[:0], own)
	} else {
		hs = lookupHashes(lbuf[:0], in, &in.Event.UserData)
	}
	var rec *store.Identity
	var err error
	ambiguous := false
	if mode == store.IdentityVisitor {
		if in.VisitorID != "" && s.mayKnow(in.Site.Key, "visitor", in.VisitorID) {
			rec, err = s.lookupIdentity(ctx, in.Site.Key, in.VisitorID)
		}
	} else {
		rec, ambiguous, err = s.person(ctx, in.Site.Key, in.VisitorID, hs)
	}
	switch {
	case err != nil:
		return err
	case ambiguous || rec != nil && conflicting(rec, in.VisitorID, hs):
		s.ambiguous.Inc()
		return nil
	case rec == nil:
		return nil
	}
	in.Enriched = fillFrom(in, rec)
	return nil
}

// conflicting reports whether rec is someone else's than the person of an
// event of visitor (may be "") naming the strong hashes hs: the record of
// another browser, or one holding other values of a strong key the event
// carries.
func conflicting(rec *store.Identity, visitor string, hs []lookup) bool {
	if visitor != "" && rec.VisitorID != visitor && !isPseudo(rec.VisitorID) {
		return true
	}
	for _, l := range hs {
		if held := rec.Hashes[l.key]; len(held) > 0 && !slices.Contains(held, l.hash) {
			return true
		}
	}
	return false
}

// fillFrom adds what rec knows to the keys in's event lacks and returns
// the names of the keys it added.
func fillFrom(in *pipeline.Input, rec *store.Identity) []string {
	ud := &in.Event.UserData
	var added []string
	for _, k := range store.IdentityKeys {
		if dst := ud.List(k); len(*dst) == 0 && len(rec.Hashes[k]) > 0 {
			// A copy: rec is shared with the cache.
			*dst = slices.Clone(rec.Hashes[k])
			added = append(added, k)
		}
	}
	fill := func(name string, dst *string, v string) {
		if *dst == "" && v != "" {
			*dst = v
			added = append(added, name)
		}
	}
	fill("fbp", &ud.Fbp, rec.Fbp)
	if clickFresh(rec.Fbc, time.Unix(int64(in.Event.EventTime), 0), in.Site.FbcWindow()) {
		fill("fbc", &ud.Fbc, rec.Fbc)
	}
	// A browser's address and agent describe that browser's visits only.
	if in.Event.ActionSource == "website" {
		fill("client_ip_address", &ud.ClientIPAddress, rec.IP)
		fill("client_user_agent", &ud.ClientUserAgent, rec.UA)
	}
	return added
}

// clickSlack allows for clocks: a click a little after the event is the
// same visit.
const clickSlack = time.Minute

// clickFresh reports whether fbc (fb.1.<click ms>.<fbclid>) records a click
// within window before an event at at.
func clickFresh(fbc string, at time.Time, window time.Duration) bool {
	parts := strings.SplitN(fbc, ".", 4)
	if len(parts) != 4 || parts[0] != "fb" {
		return false
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return false
	}
	age := at.Sub(time.UnixMilli(ms))
	return age >= -clickSlack && age <= window
}

// lookup is one strong key's hash an event names.
type lookup struct{ key, hash string }

// lookupHashes appends to out the hashes of the raw external_id and em of
// an event (before the pipeline hashes them) as the pipeline will, to find
// their owner.
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
	} {
		for _, v := range f.vals {
			if h, err := normalize.Hash(f.field, v, o); err == nil && len(h) >= 64 {
				out = append(out, lookup{f.key, h[:64]})
			}
		}
	}
	return out
}

// ownLookups appends to out the hashes of external_id and em of a hashed
// user_data, in the order of lookupHashes, each once.
func ownLookups(out []lookup, own *normalize.UserData) []lookup {
	for _, f := range [...]struct {
		key  string
		vals []string
	}{
		{store.KeyExternalID, own.ExternalID},
		{store.KeyEmail, own.Em},
	} {
		for _, h := range f.vals {
			if l := (lookup{f.key, h[:min(64, len(h))]}); len(h) >= 64 && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// maxCandidates bounds the records one event's keys may point at before
// it is ambiguous without reading them all (a role address of many).
const maxCandidates = 4

// person finds the one record of the person of an event of visitor (may
// be "") naming the strong hashes hs: the visitor's record and the owners
// of the hashes. ambiguous means they are several people's. The record is
// shared with the cache: read-only.
func (s *Service) person(ctx context.Context, site, visitor string, hs []lookup) (rec *store.Identity, ambiguous bool, err error) {
	var seenBuf [maxCandidates + 1]string
	seen := seenBuf[:0] // a handful at most: a slice beats a map
	var candBuf [maxCandidates]*store.Identity
	cands := candBuf[:0]
	add := func(v string) error {
		if slices.Contains(seen, v) {
			return nil
		}
		if seen = append(seen, v); len(seen) > maxCandidates {
			return nil
		}
		id, err := s.lookupIdentity(ctx, site, v)
		if err != nil || id == nil {
			return err
		}
		cands = append(cands, id)
		return nil
	}
	if visitor != "" && s.mayKnow(site, "visitor", visitor) {
		if err := add(visitor); err != nil {
			return nil, false, err
		}
	}
	for _, l := range hs {
		if !s.mayKnow(site, l.key, l.hash) {
			continue
		}
		owners, err := s.lookupOwners(ctx, site, l.key, l.hash)
		if err != nil {
			return nil, false, err
		}
		if l.key == store.KeyExternalID {
			// The pseudo record of an external_id is not in the index.
			if err := add(ExternalPrefix + l.hash); err != nil {
				return nil, false, err
			}
		}
		for _, v := range owners {
			if err := add(v); err != nil {
				return nil, false, err
			}
		}
		if len(seen) > maxCandidates {
			return nil, true, nil
		}
	}
	cands = withoutLinkedPseudo(cands)
	switch len(cands) {
	case 0:
		return nil, false, nil
	case 1:
		return cands[0], false, nil
	}
	return nil, true, nil
}

// withoutLinkedPseudo drops from cands the pseudo record of an external_id
// that another, a browser's, also holds: both are the person with that
// external_id (server events named it before the browser did), and the
// browser's record is the one that knows the browser. Then it drops the
// pseudo record of an email (server events named it, with no external_id,
// before anything else did) that another record, not an email's, could
// take in whole (it holds no other value of a strong key the email's
// record holds): with it the event's keys find what they found before
// there was an email's record. An email's record that such a record could
// not take in is someone else's: both stay, and the event is ambiguous.
func withoutLinkedPseudo(cands []*store.Identity) []*store.Identity {
	if len(cands) < 2 {
		return cands
	}
	// Each pass keeps every record its test looks at (DeleteFunc moves
	// the kept ones while it tests).
	cands = slices.DeleteFunc(cands, func(c *store.Identity) bool {
		ext, ok := strings.CutPrefix(c.VisitorID, ExternalPrefix)
		return ok && slices.ContainsFunc(cands, func(d *store.Identity) bool {
			return !isPseudo(d.VisitorID) && slices.Contains(d.Hashes[store.KeyExternalID], ext)
		})
	})
	if len(cands) < 2 {
		return cands
	}
	return slices.DeleteFunc(cands, func(c *store.Identity) bool {
		return isEmailPseudo(c.VisitorID) && slices.ContainsFunc(cands, func(d *store.Identity) bool {
			return !isEmailPseudo(d.VisitorID) && !d.ConflictsWith(c)
		})
	})
}

// Learn implements pipeline.Observer. It runs on a prepared event, whose
// user_data holds hashes, before its commit: what the event teaches is
// copied out of it now and recorded by the returned func once the event is
// accepted (nil when it teaches nothing). The person is the event's
// visitor; else (identity mode full) the one record its external_id or em
// point at; else a pseudo visitor for its first external_id, or without
// one for its first em. An event with neither teaches nothing. Failures
// are logged: the event is already stored.
func (s *Service) Learn(in *pipeline.Input) func(context.Context) {
	if in.Event == nil || in.Site == nil || held(in) {
		return nil
	}
	switch in.Site.IdentityMode() {
	case store.IdentityOff:
		return nil
	case store.IdentityVisitor:
		if in.VisitorID == "" {
			return nil
		}
	}
	// A returning person whose event teaches nothing new costs nothing.
	if s.knownAlready(in) {
		return nil
	}
	if len(s.queue) == cap(s.queue) && teachesSomething(in) {
		// The writer is behind (see queueSize) and the observation would
		// be dropped: under overload, most are. Packing it would be
		// wasted work on the request's path; it is counted as dropped
		// once the event is accepted.
		return s.dropLater
	}
	obs := observation(in)
	if obs == "" {
		return nil
	}
	return func(ctx context.Context) {
		select {
		case s.queue <- obs:
		default: // the writer is behind: see queueSize
			s.dropped.Inc()
		}
	}
}

// teachesSomething reports whether observation(in) could be non-empty: the
// event names a visitor or carries a value of an identity key.
func teachesSomething(in *pipeline.Input) bool {
	if in.VisitorID != "" {
		return true
	}
	ud := &in.Event.UserData
	for _, k := range store.IdentityKeys {
		if len(*ud.List(k)) > 0 {
			return true
		}
	}
	return false
}

// knownAlready reports, from the cache and the filter alone, that write
// would learn nothing from in: its person (the visitor, else the one owner
// of its strong hashes, found as owner does) has a cached record that
// already holds what in teaches (as observation and withoutChurn make it)
// or holds someone else's strong keys, or in names no one write could
// find. false means: let write decide.
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
	for _, k := range store.StrongKeys {
		var vals [store.MaxIdentityValues]string
		if store.Conflicts(cur.Hashes[k], hashesOf(vals[:0], *ud.List(k))) {
			return true // write skips someone else's keys
		}
	}
	for _, k := range store.IdentityKeys {
		if keyChanges(cur.Hashes[k], *ud.List(k), true) {
			return false
		}
	}
	ip, ua := browserOf(in)
	if cur.IP != "" {
		ip = ""
	}
	if cur.UA != "" {
		ua = ""
	}
	return !deviceChanges(cur, ud.Fbp, ud.Fbc, ip, ua)
}

// hashesOf appends the pure hashes of l to out, as observation keeps them.
func hashesOf(out []string, l event.List) []string {
	for _, v := range l {
		if isHash(v) {
			out = append(out, v)
		}
	}
	return out
}

// browserOf is the IP address and user agent an event teaches: a
// website event's (a shop's or a call centre's address is no one's).
func browserOf(in *pipeline.Input) (ip, ua string) {
	if in.Event.ActionSource != "website" {
		return "", ""
	}
	return in.Event.UserData.ClientIPAddress, in.Event.UserData.ClientUserAgent
}

// cachedOwner is owner for the hashes of an accepted event, from the cache
// only; ok is false when it would have to ask the store, or could find
// several records.
func (s *Service) cachedOwner(site string, ud *event.UserData) (visitor string, ok bool) {
	// As person: the records of the hashes' owners, and of the pseudo
	// visitors of the external_ids.
	one := func(v string) bool {
		id, ok := s.cache.identity(site, v)
		switch {
		case !ok || id != nil && visitor != "" && visitor != v:
			return false
		case id != nil:
			visitor = v
		}
		return true
	}
	for _, k := range store.StrongKeys {
		for _, h := range *ud.List(k) {
			if !isHash(h) || !s.mayKnow(site, k, h) {
				continue
			}
			vs, ok := s.cache.owners(site, k, h)
			if !ok || k == store.KeyExternalID && !one(ExternalPrefix+h) {
				return "", false
			}
			for _, v := range vs {
				if !one(v) {
					return "", false
				}
			}
		}
	}
	if visitor != "" {
		return visitor, true
	}
	for _, h := range ud.ExternalID {
		if isHash(h) {
			return ExternalPrefix + h, true
		}
	}
	for _, h := range ud.Em {
		if isHash(h) {
			return EmailPrefix + h, true
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

// observation is what an accepted event (user_data hashed) teaches, packed
// (so copied: the event's strings may be cut from its whole request body,
// see event.DecodeBatch); "" when it names no visitor and holds no hash.
func observation(in *pipeline.Input) packed {
	ud := &in.Event.UserData
	var buf [2 * numIdentityKeys]string
	vals := buf[:0]
	var hashes [numIdentityKeys][]string
	for i, k := range store.IdentityKeys {
		start := len(vals)
		for _, v := range *ud.List(k) {
			// Only pure hashes are kept; anything else is never stored.
			if isHash(v) && !slices.Contains(vals[start:], v) {
				vals = append(vals, v)
			}
		}
		hashes[i] = vals[start:len(vals):len(vals)]
	}
	if in.VisitorID == "" && len(vals) == 0 {
		return ""
	}
	ip, ua := browserOf(in)
	return pack(in.Site.Key, in.VisitorID, ud.Fbp, ud.Fbc, ip, ua, &hashes)
}

// owner finds the record an observation of an event that names no visitor
// belongs to: the one record its strong keys point at; else, with an
// external_id, the pseudo visitor of the first; else, with an em, the
// pseudo visitor of the first; "" when it points at several people or at
// someone else's record, or names no strong key (nothing is learned).
func (s *Service) owner(ctx context.Context, obs *store.Identity) (string, error) {
	var lbuf [8]lookup
	hs := lbuf[:0]
	for _, k := range store.StrongKeys {
		for _, h := range obs.Hashes[k] {
			hs = append(hs, lookup{k, h})
		}
	}
	rec, ambiguous, err := s.person(ctx, obs.SiteKey, "", hs)
	switch {
	case err != nil:
		return "", err
	case ambiguous:
		return "", nil
	case rec != nil:
		if rec.ConflictsWith(obs) {
			return "", nil
		}
		return rec.VisitorID, nil
	}
	if ext := obs.Hashes[store.KeyExternalID]; len(ext) > 0 {
		return ExternalPrefix + ext[0], nil
	}
	if em := obs.Hashes[store.KeyEmail]; len(em) > 0 {
		return EmailPrefix + em[0], nil
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

// Register adds the service's metrics to r: the ambiguous events, the
// cache's entries and evictions, and the filter's size and fill.
func (s *Service) Register(r prometheus.Registerer) {
	opts := func(name, help string, labels prometheus.Labels) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: "capirelay", Subsystem: "identity", Name: name, Help: help, ConstLabels: labels}
	}
	entries := func(which string, n func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(opts("cache_entries", "Entries of identity's cache, by map: records (at most "+
			strconv.Itoa(CacheRecords)+") and owners of hashes (at most "+strconv.Itoa(CacheOwners)+").",
			prometheus.Labels{"map": which}), func() float64 { return float64(n()) })
	}
	r.MustRegister(s.ambiguous, s.dropped,
		entries("records", func() int { ids, _, _ := s.cache.sizes(); return ids }),
		entries("owners", func() int { _, owners, _ := s.cache.sizes(); return owners }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "capirelay", Subsystem: "identity", Name: "cache_evictions_total",
			Help: "Entries identity's cache dropped before they expired, to stay within its bound."},
			func() float64 { _, _, ev := s.cache.sizes(); return float64(ev) }),
		prometheus.NewGaugeFunc(opts("filter_bytes", "Memory of identity's filter of known visitors and hashes: 1 MiB, doubling as it fills, 15 MiB at most.", nil),
			func() float64 { return float64(s.filter.bytes()) }),
		prometheus.NewGaugeFunc(opts("filter_fill_ratio", "Share of the newest filter layer's bits set; past about 0.5, with the filter at its 15 MiB, it lets through more never-seen keys (a store read each).", nil),
			func() float64 { return s.filter.fill() }),
	)
}
