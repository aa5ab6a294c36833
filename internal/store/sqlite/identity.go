package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

var (
	_ store.Identities = (*DB)(nil)
	_ store.Forgetter  = (*DB)(nil)
)

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readQuerier reads through cached statements.
type readQuerier struct{ c *stmtCache }

func (q readQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.c.row(ctx, query, args...)
}

// loadIdentity reads a visitor's identity and its rowid. A row found by
// the visitor's key (lookupKey) that is another visitor's is not theirs.
func (db *DB) loadIdentity(ctx context.Context, q querier, siteKey, visitorID string) (*store.Identity, int64, error) {
	id := store.Identity{SiteKey: siteKey, VisitorID: visitorID}
	var rowid int64
	var site, visitor, hashes string
	var sealed []byte
	var created, updated int64
	err := q.QueryRowContext(ctx, `SELECT id, site_key, visitor_id, hashes, device, created_at, updated_at FROM identities WHERE vk=?`,
		lookupKey(siteKey, visitorID)).Scan(&rowid, &site, &visitor, &hashes, &sealed, &created, &updated)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	if site != siteKey || visitor != visitorID {
		return nil, 0, store.ErrNotFound
	}
	if id.Hashes, err = store.UnmarshalHashes(hashes); err != nil {
		return nil, 0, fmt.Errorf("identity hashes: %w", err)
	}
	if err := store.OpenDevice(db.box, sealed, &id); err != nil {
		return nil, 0, err
	}
	id.CreatedAt, id.UpdatedAt = fromMS(created), fromMS(updated)
	return &id, rowid, nil
}

// Identity returns the identity of a visitor.
func (db *DB) Identity(ctx context.Context, siteKey, visitorID string) (*store.Identity, error) {
	id, _, err := db.loadIdentity(ctx, readQuerier{&db.id.stmts}, siteKey, visitorID)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// VisitorsByHash lists visitors whose identity holds hash under key, the
// most recently learned first. A row of identity_keys is only a pointer:
// the identity must be of the site and hold the hash (as a whole JSON
// string), so a key two values share by chance links no one.
func (db *DB) VisitorsByHash(ctx context.Context, siteKey, key, hash string) ([]string, error) {
	rows, err := db.id.stmts.rows(ctx, `SELECT i.visitor_id FROM identity_keys x JOIN identities i ON i.id = x.id
		WHERE x.k=? AND i.site_key=? AND instr(i.hashes, ?) > 0
		ORDER BY i.updated_at DESC, i.visitor_id LIMIT 20`, lookupKey(key, hash), siteKey, quoted(hash))
	if err != nil {
		return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}

// quoted is hash as a JSON string in the hashes column (store.MarshalHashes).
func quoted(hash string) string {
	b, _ := json.Marshal(hash)
	return string(b)
}

// LearnIdentity merges id into the stored identity and indexes its hashes.
func (db *DB) LearnIdentity(ctx context.Context, id *store.Identity) error {
	return db.LearnIdentities(ctx, []*store.Identity{id})
}

// learnChunk bounds the identities one transaction learns, so forget (which
// writes the identity file too) waits at most a chunk's work for it: about
// 0.05 s of new people with hashed keys and 100,000 known. Ingest never
// waits for it (the identity file has its own write lock). Larger chunks
// share more pages per commit. With the text keys before the identity
// file's migration 3: per new person, 94 KB written and 216–263 µs at 512
// against 101 KB and 246–290 µs at 128 (82 KB, 177–181 µs at 1,000,
// BenchmarkLearnIdentities); in process under realistic overload, 20 %
// more people learned at 512 with the same ingest and CPU share, while
// 1,000 learned 50 % more but cost ingest about 10 %. With 64-bit keys, the
// binary at 20,000 events/s learned 8 % more at 1,000 than at 512 in three
// pairs, with the same p99 (37–46 against 36–58 ms).
const learnChunk = 512

// learnSizes are the row counts of the prepared multi-row statements of
// learning (see piecesOf).
var learnSizes = [...]int{128, 32, 8, 2, 1}

// learnStmts are learning's prepared statements on the identity file's
// write connection.
// Inserts are INSERT OR IGNORE and updates UPDATE OR IGNORE rather than
// upserts: with no constraint that can abort a statement, SQLite keeps no
// statement journal, which for multi-row inserts into these two random-
// keyed tables was most of their cost.
type learnStmts struct {
	load, update, unindex *sql.Stmt
	insert, index         [len(learnSizes)]*sql.Stmt
}

func prepareLearn(prep func(string) *sql.Stmt) learnStmts {
	st := learnStmts{
		load:    prep(`SELECT id, site_key, visitor_id, hashes, device, created_at, updated_at FROM identities WHERE vk=?`),
		update:  prep(`UPDATE OR IGNORE identities SET hashes=?, device=?, updated_at=? WHERE id=?`),
		unindex: prep(`DELETE FROM identity_keys WHERE k=? AND id=?`),
	}
	for i, n := range learnSizes {
		st.insert[i] = prep(`INSERT OR IGNORE INTO identities (vk, site_key, visitor_id, hashes, device, created_at, updated_at) VALUES ` +
			tuples(n, "(?,?,?,?,?,?,?)") + ` RETURNING vk, id`)
		st.index[i] = prep(`INSERT OR IGNORE INTO identity_keys (k, id) VALUES ` + tuples(n, "(?,?)"))
	}
	return st
}

func (st *learnStmts) all() []*sql.Stmt {
	return slices.Concat([]*sql.Stmt{st.load, st.update, st.unindex}, st.insert[:], st.index[:])
}

// stmtRow reads one row through a prepared statement, as a querier.
type stmtRow struct{ st *sql.Stmt }

func (q stmtRow) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.st.QueryRowContext(ctx, args...)
}

// keyRow is one row of identity_keys: the key of an indexed hash
// (lookupKey of kind and hash) and the rowid of the identity holding it.
type keyRow struct{ k, id int64 }

// LearnIdentities merges each of ids (see store.Identities), a chunk of
// them per transaction, without waiting for fsync. It is set-based:
// identities believed new are inserted with multi-row statements, the
// others read and merged one by one, and only index rows that changed are
// written; nothing at all for an identity the merge leaves as it was.
func (db *DB) LearnIdentities(ctx context.Context, ids []*store.Identity) error {
	for lo := 0; lo < len(ids); lo += learnChunk {
		if err := db.learnChunk(ctx, ids[lo:min(lo+learnChunk, len(ids))]); err != nil {
			return fmt.Errorf("learn identities: %w", err)
		}
	}
	return nil
}

func (db *DB) learnChunk(ctx context.Context, ids []*store.Identity) error {
	tx, err := db.id.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback()
	st := &db.id.learn
	now := ms(db.now())
	var likelyNew, rest []*store.Identity
	for _, id := range ids {
		if id.LikelyNew {
			likelyNew = append(likelyNew, id)
		} else {
			rest = append(rest, id)
		}
	}
	existing, index, err := db.insertIdentities(ctx, tx, likelyNew, now, nil)
	if err != nil {
		return err
	}
	var unindex []keyRow
	load := stmtRow{tx.StmtContext(ctx, st.load)}
	for _, id := range append(rest, existing...) {
		if index, unindex, err = db.mergeIdentity(ctx, tx, load, id, now, index, unindex); err != nil {
			return err
		}
	}
	del := tx.StmtContext(ctx, st.unindex)
	for _, k := range unindex {
		if _, err := del.ExecContext(ctx, k.k, k.id); err != nil {
			return fmt.Errorf("index: %w", mapErr(err))
		}
	}
	sortKeyRows(index)
	args := make([]any, 0, 2*learnSizes[0])
	err = piecesOf(learnSizes[:], len(index), func(lo, size int) error {
		args = args[:0]
		for _, k := range index[lo : lo+learnSizes[size]] {
			args = append(args, k.k, k.id)
		}
		_, err := tx.StmtContext(ctx, st.index[size]).ExecContext(ctx, args...)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return mapErr(tx.Commit())
}

// indexRows appends the index rows of id's indexed hashes to rows; rowid is
// id's row.
func indexRows(rows []keyRow, id *store.Identity, rowid int64) []keyRow {
	store.IndexRows(id, func(kind, hash string) { rows = append(rows, keyRow{lookupKey(kind, hash), rowid}) })
	return rows
}

// insertIdentities inserts identities believed new with multi-row
// statements, in the order of their visitors' keys (see sort.go), appends
// the index rows of those inserted to index and returns those that existed
// after all (to merge).
func (db *DB) insertIdentities(ctx context.Context, tx *sql.Tx, ids []*store.Identity, now int64, index []keyRow) (existing []*store.Identity, _ []keyRow, _ error) {
	st := &db.id.learn
	keyed := byVisitorKey(ids)
	args := make([]any, 0, 7*learnSizes[0])
	err := piecesOf(learnSizes[:], len(keyed), func(lo, size int) error {
		part := keyed[lo : lo+learnSizes[size]]
		args = args[:0]
		curs := make([]*store.Identity, len(part))
		for i, k := range part {
			cur := &store.Identity{SiteKey: k.id.SiteKey, VisitorID: k.id.VisitorID}
			cur.Merge(k.id)
			curs[i] = cur
			hashes, err := store.MarshalHashes(cur.Hashes)
			if err != nil {
				return err
			}
			args = append(args, k.vk, cur.SiteKey, cur.VisitorID, string(hashes), store.SealDevice(db.box, cur), now, now)
		}
		rows, err := tx.StmtContext(ctx, st.insert[size]).QueryContext(ctx, args...)
		if err != nil {
			return mapErr(err)
		}
		inserted := make(map[int64]int64, len(part)) // vk -> rowid
		for rows.Next() {
			var vk, rowid int64
			if err := rows.Scan(&vk, &rowid); err != nil {
				rows.Close()
				return mapErr(err)
			}
			inserted[vk] = rowid
		}
		if err := rows.Close(); err != nil {
			return mapErr(err)
		}
		for i, k := range part {
			// A repeat of a visitor in part was not inserted: merged.
			// So is a visitor whose key another holds (lookupKey), which
			// the merge then finds is not theirs, and leaves unlearned.
			if rowid, ok := inserted[k.vk]; ok {
				delete(inserted, k.vk)
				index = indexRows(index, curs[i], rowid)
			} else {
				existing = append(existing, k.id)
			}
		}
		return nil
	})
	return existing, index, err
}

// mergeIdentity merges id into its stored identity (creating it when
// absent), writing only what changed, and appends the index rows to add
// and to remove.
func (db *DB) mergeIdentity(ctx context.Context, tx *sql.Tx, load querier, id *store.Identity, now int64, index, unindex []keyRow) ([]keyRow, []keyRow, error) {
	cur, rowid, err := db.loadIdentity(ctx, load, id.SiteKey, id.VisitorID)
	if errors.Is(err, store.ErrNotFound) {
		_, index, err := db.insertIdentities(ctx, tx, []*store.Identity{id}, now, index)
		return index, unindex, err
	}
	if err != nil {
		return index, unindex, err
	}
	before := indexRows(nil, cur, rowid)
	if !cur.Merge(id) {
		return index, unindex, nil
	}
	hashes, err := store.MarshalHashes(cur.Hashes)
	if err != nil {
		return index, unindex, err
	}
	if _, err := tx.StmtContext(ctx, db.id.learn.update).ExecContext(ctx, string(hashes), store.SealDevice(db.box, cur), now, rowid); err != nil {
		return index, unindex, mapErr(err)
	}
	// The index mirrors the capped lists: hashes pushed out are unlinked.
	after := indexRows(nil, cur, rowid)
	for _, k := range after {
		if !slices.Contains(before, k) {
			index = append(index, k)
		}
	}
	for _, k := range before {
		if !slices.Contains(after, k) {
			unindex = append(unindex, k)
		}
	}
	return index, unindex, nil
}

// KnownKeys lists visitors and indexed hashes changed since a time: those
// of the identities updated since, whose hashes name their index rows.
func (db *DB) KnownKeys(ctx context.Context, since time.Time, fn func(siteKey, kind, value string)) (time.Time, error) {
	latest := since
	rows, err := db.id.r.QueryContext(ctx, `SELECT site_key, visitor_id, hashes, updated_at FROM identities WHERE updated_at >= ?`, ms(since))
	if err != nil {
		return since, fmt.Errorf("known identity keys: %w", mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id store.Identity
		var hashes string
		var at int64
		if err := rows.Scan(&id.SiteKey, &id.VisitorID, &hashes, &at); err != nil {
			return since, fmt.Errorf("known identity keys: %w", mapErr(err))
		}
		if id.Hashes, err = store.UnmarshalHashes(hashes); err != nil {
			return since, fmt.Errorf("known identity keys: hashes of a visitor of %s: %w", id.SiteKey, err)
		}
		fn(id.SiteKey, "visitor", id.VisitorID)
		store.IndexRows(&id, func(kind, hash string) { fn(id.SiteKey, kind, hash) })
		if t := fromMS(at); t.After(latest) {
			latest = t
		}
	}
	if err := rows.Err(); err != nil {
		return since, fmt.Errorf("known identity keys: %w", mapErr(err))
	}
	return latest, nil
}

// checkpointTruncate folds the WAL into the database file of the write
// pool w and truncates it, retrying while readers hold old snapshots.
func checkpointTruncate(ctx context.Context, w *sql.DB) error {
	for attempt := 0; ; attempt++ {
		var busy, logFrames, done int
		if err := w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return fmt.Errorf("checkpoint: %w", mapErr(err))
		}
		if busy == 0 {
			return nil
		}
		if attempt == 50 {
			return fmt.Errorf("checkpoint: %w: readers kept the WAL busy", store.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
