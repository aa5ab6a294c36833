package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

// migrated makes a database of the schema of migration version, as an
// older relay left it, lets fill write into it, then opens it as this relay
// does (migrating it to the latest schema).
func migrated(t *testing.T, version int64, fill func(old *sql.DB, box *secret.Box)) *DB {
	t.Helper()
	box, _ := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
	path := filepath.Join(t.TempDir(), FileName)
	old := atVersion(t, path, migrations, "migrations", version)
	fill(old, box)
	old.Close()
	db, err := Open(t.Context(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// atVersion opens the file at path with the migrations of dir in fsys up to
// version applied, as an older relay left it.
func atVersion(t *testing.T, path string, fsys fs.FS, dir string, version int64) *sql.DB {
	t.Helper()
	old, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := fs.Sub(fsys, dir)
	p, err := goose.NewProvider(goose.DialectSQLite3, old, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), version); err != nil {
		t.Fatal(err)
	}
	return old
}

// A database written before payloads moved to their own table keeps every
// queued event: the migration carries the sealed payload over, and deleting
// an outbox row still deletes its payload.
func TestPayloadMigrationKeepsQueuedEvents(t *testing.T) {
	ctx := context.Background()
	payload := []byte(`{"event_name":"Purchase","event_id":"old-1"}`)
	db := migrated(t, 4, func(old *sql.DB, box *secret.Box) {
		for i, id := range []string{"old-1", "old-2"} {
			if _, err := old.Exec(`INSERT INTO outbox (site_key, event_name, event_id, event_time, payload, state, next_attempt, created_at)
			VALUES ('s', 'Purchase', ?, 1, ?, 'pending', 1, ?)`, id, box.Seal(payload, []byte(store.PayloadAD)), i+1); err != nil {
				t.Fatal(err)
			}
		}
	})
	items, err := db.Claim(ctx, "s", "me", 10, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || !bytes.Equal(items[0].Payload, payload) || items[1].EventID != "old-2" {
		t.Fatalf("after migrating, claimed %+v", items)
	}
	// New events are numbered after the old ones.
	res, err := db.Enqueue(ctx, []store.NewEvent{{SiteKey: "s", EventName: "Purchase", EventID: "new-1", EventTime: time.Now(), Payload: payload}})
	if err != nil || res[0].ID != items[1].ID+1 {
		t.Fatalf("enqueue after migrating: %+v %v", res, err)
	}
	if _, err := db.w.Exec(`DELETE FROM outbox WHERE event_id='old-1'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.r.QueryRow(`SELECT count(*) FROM outbox_payload`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("payload rows after deleting one outbox row: %d (%v), want 2", n, err)
	}
}

// A database written when phones had index rows loses them (a phone links
// no one), and forget still finds a person by their phone.
func TestPhoneRowsMigration(t *testing.T) {
	ctx := context.Background()
	db := migrated(t, 14, func(old *sql.DB, _ *secret.Box) {
		for _, q := range []string{
			`INSERT INTO identities (site_key, visitor_id, hashes, created_at, updated_at) VALUES ('s', 'v', '{"ph":["phhash"],"em":["emhash"]}', 1, 1)`,
			`INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at) VALUES ('ph', 'phhash', 's', 'v', 1), ('em', 'emhash', 's', 'v', 1)`,
		} {
			if _, err := old.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	})
	var phones, emails, left int
	if err := db.id.r.QueryRow(`SELECT count(*) FILTER (WHERE k = ?), count(*) FILTER (WHERE k = ?) FROM identity_keys`,
		lookupKey("ph", "phhash"), lookupKey("em", "emhash")).Scan(&phones, &emails); err != nil || phones != 0 || emails != 1 {
		t.Fatalf("index rows after migrating: %d phone, %d email (%v); want 0 and 1", phones, emails, err)
	}
	// The rows moved to the identity file; the main file has no table of them.
	if err := db.r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('identities', 'identity_keys')`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("main file still has %d identity tables (%v)", left, err)
	}
	res, err := db.Forget(ctx, store.ForgetRequest{Hashes: []string{"phhash"}})
	if err != nil || res.Identities != 1 || res.IdentityKeys != 1 {
		t.Fatalf("Forget(phone) = %+v, %v; want the identity and its email row", res, err)
	}
}

// An identity file written when identities was keyed by (site_key,
// visitor_id) becomes a rowid table (a new person's row is appended, not
// written on a random page) and keeps every person: found by visitor and by
// key, merged with what is learned next, and new people are learned beside
// them.
func TestIdentityFileRowidMigration(t *testing.T) {
	ctx := t.Context()
	db := identityMigrated(t, 1,
		`INSERT INTO identities (site_key, visitor_id, hashes, created_at, updated_at) VALUES
			('s', 'v1', '{"em":["em1"],"fn":["fn1"]}', 1000, 2000), ('s', 'v2', '{"em":["em2"]}', 1500, 1500), ('t', 'v1', '{"em":["em3"]}', 1200, 1200)`,
		`INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at) VALUES ('em', 'em1', 's', 'v1', 2000), ('em', 'em2', 's', 'v2', 1500), ('em', 'em3', 't', 'v1', 1200)`)

	var ddl string
	if err := db.id.r.QueryRow(`SELECT sql FROM sqlite_master WHERE type='table' AND name='identities'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID") || !strings.Contains(ddl, "INTEGER PRIMARY KEY") {
		t.Fatalf("identities after migrating:\n%s\nwant a rowid table", ddl)
	}
	for _, c := range []struct{ site, visitor, em, fn string }{{"s", "v1", "em1", "fn1"}, {"s", "v2", "em2", ""}, {"t", "v1", "em3", ""}} {
		id, err := db.Identity(ctx, c.site, c.visitor)
		if err != nil || id.Hashes["em"][0] != c.em || (c.fn != "" && id.Hashes["fn"][0] != c.fn) {
			t.Fatalf("Identity(%s, %s) after migrating = %+v, %v", c.site, c.visitor, id, err)
		}
		if vs, err := db.VisitorsByHash(ctx, c.site, "em", c.em); err != nil || len(vs) != 1 || vs[0] != c.visitor {
			t.Fatalf("VisitorsByHash(%s) = %v, %v", c.em, vs, err)
		}
	}
	// Learning merges into a migrated row and adds a new person; the
	// unique (site_key, visitor_id) keeps one row each.
	if err := db.LearnIdentities(ctx, []*store.Identity{
		{SiteKey: "s", VisitorID: "v1", Hashes: map[string][]string{"ln": {"ln1"}}},
		{SiteKey: "s", VisitorID: "v3", Hashes: map[string][]string{"em": {"em4"}}, LikelyNew: true},
		{SiteKey: "s", VisitorID: "v2", Hashes: map[string][]string{"ct": {"ct2"}}, LikelyNew: true}, // believed new, is not
	}); err != nil {
		t.Fatal(err)
	}
	if id, err := db.Identity(ctx, "s", "v1"); err != nil || id.Hashes["em"][0] != "em1" || id.Hashes["ln"][0] != "ln1" {
		t.Fatalf("merged identity = %+v, %v", id, err)
	}
	if id, err := db.Identity(ctx, "s", "v2"); err != nil || id.Hashes["em"][0] != "em2" || id.Hashes["ct"][0] != "ct2" {
		t.Fatalf("identity learned as new but known = %+v, %v", id, err)
	}
	var rows, v3 int
	if err := db.id.r.QueryRow(`SELECT count(*), count(*) FILTER (WHERE visitor_id='v3') FROM identities`).Scan(&rows, &v3); err != nil || rows != 4 || v3 != 1 {
		t.Fatalf("%d identity rows, %d for v3 (%v); want 4 and 1", rows, v3, err)
	}
	if _, err := db.id.w.Exec(`INSERT INTO identities (vk, site_key, visitor_id, created_at, updated_at) VALUES (capirelay_key('s', 'v1'), 's', 'v1', 1, 1)`); err == nil {
		t.Fatal("a second row for one visitor was taken")
	}
}

// An identity file whose trees were keyed by text (migration 2) gets 64-bit
// keys (migration 3): every person is found by visitor and by each indexed
// hash, the index rows point at the same rows, learning goes on from them,
// and migrating down gives back the text index rows.
func TestIdentityFileKeyMigration(t *testing.T) {
	ctx := t.Context()
	textRows := []string{"em/em1/s/v1", "em/em2/s/v2", "em/em3/t/v1", "external_id/x1/s/v1"}
	db := identityMigrated(t, 2,
		`INSERT INTO identities (site_key, visitor_id, hashes, created_at, updated_at) VALUES
			('s', 'v1', '{"em":["em1"],"external_id":["x1"],"fn":["fn1"]}', 1000, 2000), ('s', 'v2', '{"em":["em2"]}', 1500, 1500),
			('t', 'v1', '{"em":["em3"]}', 1200, 1200), ('t', 'ext:x9', '{"external_id":["x9"]}', 1300, 1300)`,
		`INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at) VALUES
			('em', 'em1', 's', 'v1', 2000), ('external_id', 'x1', 's', 'v1', 2000), ('em', 'em2', 's', 'v2', 1500), ('em', 'em3', 't', 'v1', 1200)`)

	var n, keyed int
	if err := db.id.r.QueryRow(`SELECT count(*), count(*) FILTER (WHERE k IN (?, ?, ?, ?)) FROM identity_keys`,
		lookupKey("em", "em1"), lookupKey("em", "em2"), lookupKey("em", "em3"), lookupKey("external_id", "x1")).Scan(&n, &keyed); err != nil || n != 4 || keyed != 4 {
		t.Fatalf("%d index rows, %d of them keyed by their hash (%v); want 4 and 4", n, keyed, err)
	}
	for _, c := range []struct{ site, visitor, kind, hash string }{
		{"s", "v1", "em", "em1"}, {"s", "v1", "external_id", "x1"}, {"s", "v2", "em", "em2"}, {"t", "v1", "em", "em3"},
	} {
		if id, err := db.Identity(ctx, c.site, c.visitor); err != nil || id.Hashes[c.kind][0] != c.hash {
			t.Fatalf("Identity(%s, %s) after migrating = %+v, %v", c.site, c.visitor, id, err)
		}
		if vs, err := db.VisitorsByHash(ctx, c.site, c.kind, c.hash); err != nil || !slices.Equal(vs, []string{c.visitor}) {
			t.Fatalf("VisitorsByHash(%s, %s, %s) = %v, %v; want %s", c.site, c.kind, c.hash, vs, err, c.visitor)
		}
	}
	if vs, err := db.VisitorsByHash(ctx, "t", "em", "em1"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash crosses sites after migrating: %v, %v", vs, err)
	}
	// Learning goes on from a migrated person: a new external_id links it.
	if err := db.LearnIdentities(ctx, []*store.Identity{{SiteKey: "s", VisitorID: "v2", Hashes: map[string][]string{"external_id": {"x2"}}}}); err != nil {
		t.Fatal(err)
	}
	if vs, err := db.VisitorsByHash(ctx, "s", "external_id", "x2"); err != nil || !slices.Equal(vs, []string{"v2"}) {
		t.Fatalf("VisitorsByHash(x2) after learning = %v, %v; want v2", vs, err)
	}

	p, err := goose.NewProvider(goose.DialectSQLite3, db.id.w, mustSub(t, identityMigrations, "migrations_identity"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	got := column[string](t, db.id.w, `SELECT kind || '/' || hash || '/' || site_key || '/' || visitor_id FROM identity_keys ORDER BY 1`)
	want := append(slices.Clone(textRows), "external_id/x2/s/v2")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("text index rows after migrating down: %q, want %q", got, want)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
}

// identityMigrated writes an identity file of the schema of migration
// version, runs stmts in it as an older relay would have, and opens the
// store beside it (migrating it to the current schema).
func identityMigrated(t *testing.T, version int64, stmts ...string) *DB {
	t.Helper()
	dir := t.TempDir()
	idPath := filepath.Join(dir, IdentityFileName)
	if err := format(idPath, identityPageSize); err != nil {
		t.Fatal(err)
	}
	old := atVersion(t, idPath, identityMigrations, "migrations_identity", version)
	for _, q := range stmts {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	box, _ := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
	db, err := Open(t.Context(), filepath.Join(dir, FileName), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustSub(t *testing.T, fsys fs.FS, dir string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}
