package sqlite

import (
	"context"
	"database/sql"
	"hash/maphash"
	"math"
	"sync"
)

// dedup finds the dedup keys (site, event name, event id) of seen_log, the
// append-only record of accepted events, by a 32-bit fingerprint in memory.
// A fingerprint only points at candidate rows; a key is a duplicate only
// when a candidate row holds exactly that key and is inside the window, so
// a fingerprint collision never drops an event.
//
// Appending keeps each commit's writes on a few pages at the end of the
// table, where a B-tree keyed by event id dirtied one scattered page per
// event. The price is memory: about 14 bytes per key in the window (a
// fingerprint and the row id's offset from base, 4 bytes each, in a map).
// One new key in 3,000 shares a fingerprint with some key of a window of
// 1.5 million and costs a read of that row.
//
// Other processes may append too (capirelay import runs beside serve): the
// writer reads rows it has not seen while it holds the write lock, before
// it decides anything, so every process sees every key.
type dedup struct {
	mu    sync.Mutex
	seed  maphash.Seed
	ids   map[uint32]uint32  // fingerprint → newest seen_log id with it, minus base
	more  map[uint32][]int64 // older ids of the same fingerprint (a stale key seen again, or a collision)
	base  int64              // ids are stored as offsets from base
	last  int64              // the highest seen_log id read or written
	floor int64              // ids below it were dropped (forgetBefore)

	limit int // keys the index holds at most; 0: maxIndexed

	hash func(dedupKey) uint32 // tests force collisions; nil: maphash
}

// maxIndexed bounds the index by default (SetDedupIndexKeys changes it):
// about 28 MB, inside serve's 104 MiB soft heap limit with ingest's
// bounded working set and identity's bounded memory beside it. Past it,
// new keys go to the overflow table (migration 00008), a B-tree keyed by
// the event, until the index has room again and the overflow table's keys
// have left the window. A site of up to a million events a day stays
// within it.
const maxIndexed = 2 << 20

// DedupKeyBytes is about what one key costs the index in memory.
const DedupKeyBytes = 14

// SetDedupIndexKeys sets how many keys the index holds before new keys go
// to the overflow table; n <= 0 restores the default. Keys already held
// stay; the bound applies to the next group.
func (db *DB) SetDedupIndexKeys(n int) {
	db.dedup.mu.Lock()
	defer db.dedup.mu.Unlock()
	db.dedup.limit = n
}

// full reports whether the index is at its bound.
func (d *dedup) full() bool {
	limit := d.limit
	if limit <= 0 {
		limit = maxIndexed
	}
	return len(d.ids) >= limit
}

func newDedup() dedup {
	return dedup{seed: maphash.MakeSeed(), ids: map[uint32]uint32{}, more: map[uint32][]int64{}}
}

func (d *dedup) fingerprint(k dedupKey) uint32 {
	if d.hash != nil {
		return d.hash(k)
	}
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(k.site)
	h.WriteByte(0)
	h.WriteString(k.name)
	h.WriteByte(0)
	h.WriteString(k.id)
	return uint32(h.Sum64())
}

// reset forgets everything; the next catchUp reads the whole table. It is
// the way back after a failed transaction, whose rows never existed.
func (d *dedup) reset() {
	d.ids = map[uint32]uint32{} // clear keeps the old table's size
	d.more = map[uint32][]int64{}
	d.base, d.last, d.floor = 0, 0, 0
}

// put records id (> every id recorded) under fp. Offsets are 32-bit: the
// first id sets base, and an id 4 billion past it rebases (rebuilds).
func (d *dedup) put(fp uint32, id int64) {
	if len(d.ids) == 0 && len(d.more) == 0 {
		d.base = id - 1
	}
	if id-d.base > math.MaxUint32 {
		d.rebase(id)
	}
	if old, ok := d.ids[fp]; ok {
		d.more[fp] = append(d.more[fp], d.base+int64(old))
	}
	d.ids[fp] = uint32(id - d.base)
}

// rebase moves base up to just below the oldest id still held, so that id
// fits. Ids older than 4 billion ids before id are dropped: their rows are
// long pruned.
func (d *dedup) rebase(id int64) {
	reach := id - math.MaxUint32/2 // older ids are dropped
	nb := id - 1
	for _, off := range d.ids {
		if old := d.base + int64(off); old >= reach && old-1 < nb {
			nb = old - 1
		}
	}
	ids := make(map[uint32]uint32, len(d.ids))
	for fp, off := range d.ids {
		if old := d.base + int64(off); old > nb {
			ids[fp] = uint32(old - nb)
		}
	}
	d.ids, d.base = ids, nb
}

// id returns the newest id recorded under fp.
func (d *dedup) id(fp uint32) (int64, bool) {
	off, ok := d.ids[fp]
	return d.base + int64(off), ok
}

// catchUpQuery reads the dedup keys after an id.
const catchUpQuery = `SELECT id, site_key, event_name, event_id, seen_at FROM seen_log WHERE id > ? ORDER BY id`

// catchUp reads rows appended since the last look (by this process before
// a reset, or by another process) that are still inside the window; query
// runs catchUpQuery with the given id.
func (d *dedup) catchUp(query func(after int64) (*sql.Rows, error), cutoff int64) error {
	rows, err := query(d.last)
	if err != nil {
		return mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, at int64
		var k dedupKey
		if err := rows.Scan(&id, &k.site, &k.name, &k.id, &at); err != nil {
			return mapErr(err)
		}
		if at >= cutoff {
			d.put(d.fingerprint(k), id)
		}
		d.last = id
	}
	return mapErr(rows.Err())
}

// fresh reports whether k has no row inside the window: among committed
// rows (read through tx) or among the keys pending in this transaction,
// which have ids after base.
func (d *dedup) fresh(ctx context.Context, tx *sql.Tx, get *sql.Stmt, fp uint32, k dedupKey, cutoff, base int64, pending func(id int64) dedupKey) (bool, error) {
	check := func(id int64) (bool, error) {
		if id > base {
			return pending(id) == k, nil
		}
		var got dedupKey
		var at int64
		err := tx.StmtContext(ctx, get).QueryRowContext(ctx, id).Scan(&got.site, &got.name, &got.id, &at)
		if err == sql.ErrNoRows { // pruned, or its site was deleted
			return false, nil
		}
		if err != nil {
			return false, mapErr(err)
		}
		return got == k && at >= cutoff, nil
	}
	id, ok := d.id(fp)
	if !ok {
		return true, nil
	}
	if dup, err := check(id); dup || err != nil {
		return false, err
	}
	for _, id := range d.more[fp] {
		if dup, err := check(id); dup || err != nil {
			return false, err
		}
	}
	return true, nil
}

// forgetBefore drops ids below min (pruned rows). It walks the index only
// when min moved since the last call: the walk holds up the writer.
func (d *dedup) forgetBefore(min int64) {
	if min <= d.floor {
		return
	}
	d.floor = min
	for fp, off := range d.ids {
		if d.base+int64(off) < min {
			delete(d.ids, fp)
		}
	}
	for fp, ids := range d.more {
		kept := ids[:0]
		for _, id := range ids {
			if id >= min {
				kept = append(kept, id)
			}
		}
		if len(kept) == 0 {
			delete(d.more, fp)
		} else {
			d.more[fp] = kept
		}
	}
}

// DedupKeys is the number of dedup keys held in memory.
func (db *DB) DedupKeys() int {
	db.dedup.mu.Lock()
	defer db.dedup.mu.Unlock()
	n := len(db.dedup.ids)
	for _, ids := range db.dedup.more {
		n += len(ids)
	}
	return n
}
