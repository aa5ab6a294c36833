package sqlite

import (
	"errors"
	"slices"
	"testing"

	"github.com/capirelay/capirelay/internal/store"
)

// Two values that share a 64-bit key (lookupKey) must never be taken for
// one another: a visitor whose key another visitor's row holds is not
// found, nor learned into that row, and an index row pointing at an
// identity that does not hold the hash links no one. Such pairs are made
// here by writing the keys directly.
func TestSharedKeyLinksNoOne(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t)
	if err := db.LearnIdentity(ctx, &store.Identity{SiteKey: "s", VisitorID: "va",
		Hashes: map[string][]string{store.KeyEmail: {"em-a"}}, IP: "203.0.113.1"}); err != nil {
		t.Fatal(err)
	}
	// va's row now carries vb's key, as if the two keys collided.
	if _, err := db.id.w.Exec(`UPDATE identities SET vk=? WHERE visitor_id='va'`, lookupKey("s", "vb")); err != nil {
		t.Fatal(err)
	}
	if id, err := db.Identity(ctx, "s", "vb"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Identity(vb) = %+v, %v; want ErrNotFound, not va's record", id, err)
	}
	for _, likelyNew := range []bool{true, false} {
		if err := db.LearnIdentities(ctx, []*store.Identity{{SiteKey: "s", VisitorID: "vb", LikelyNew: likelyNew,
			Hashes: map[string][]string{store.KeyEmail: {"em-b"}}, IP: "198.51.100.2"}}); err != nil {
			t.Fatal(err)
		}
	}
	var visitor, hashes string
	if err := db.id.r.QueryRow(`SELECT visitor_id, hashes FROM identities WHERE vk=?`, lookupKey("s", "vb")).Scan(&visitor, &hashes); err != nil {
		t.Fatal(err)
	}
	if visitor != "va" || hashes != `{"em":["em-a"]}` {
		t.Fatalf("va's row after learning vb: %s %s; want va's alone", visitor, hashes)
	}
	if vs, err := db.VisitorsByHash(ctx, "s", store.KeyEmail, "em-b"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash(em-b) = %v, %v; want none: vb was not learned", vs, err)
	}

	// An index row for em-x points at va, whose record lacks em-x.
	if _, err := db.id.w.Exec(`INSERT INTO identity_keys (k, id) SELECT ?, id FROM identities WHERE visitor_id='va'`, lookupKey(store.KeyEmail, "em-x")); err != nil {
		t.Fatal(err)
	}
	if vs, err := db.VisitorsByHash(ctx, "s", store.KeyEmail, "em-x"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash(em-x) = %v, %v; want none: va does not hold em-x", vs, err)
	}
	if vs, err := db.VisitorsByHash(ctx, "s", store.KeyEmail, "em-a"); err != nil || !slices.Equal(vs, []string{"va"}) {
		t.Fatalf("VisitorsByHash(em-a) = %v, %v; want va", vs, err)
	}
}
