package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/store"
)

// Learning inserts rows in the order of the trees they go to (see
// sortKeyRows): by the visitor's key for identities, by primary key for
// identity_keys, whatever order the observations came in.
func TestLearnSortsRowsByKey(t *testing.T) {
	t.Parallel()
	ids := []*store.Identity{
		{SiteKey: "s2", VisitorID: "a"},
		{SiteKey: "s1", VisitorID: "c"},
		{SiteKey: "s1", VisitorID: "a"},
		{SiteKey: "s2", VisitorID: "0"},
		{SiteKey: "s1", VisitorID: "b"},
	}
	keyed := byVisitorKey(ids)
	for i, k := range keyed {
		if want := lookupKey(k.id.SiteKey, k.id.VisitorID); k.vk != want {
			t.Errorf("identity %d (%s/%s) paired with key %d, want %d", i, k.id.SiteKey, k.id.VisitorID, k.vk, want)
		}
		if i > 0 && keyed[i-1].vk > k.vk {
			t.Errorf("identity %d's key %d after %d", i, k.vk, keyed[i-1].vk)
		}
	}
	if len(keyed) != len(ids) {
		t.Errorf("%d identities paired, want %d", len(keyed), len(ids))
	}
	want := []keyRow{{-9, 3}, {-9, 7}, {2, 1}, {2, 5}, {40, 1}}
	var rows []keyRow
	for _, i := range []int{3, 0, 4, 2, 1} { // as observed: out of order
		rows = append(rows, want[i])
	}
	sortKeyRows(rows)
	if !slices.Equal(rows, want) {
		t.Errorf("key rows in order %v, want %v", rows, want)
	}
}

// LearnIdentities appends new people to identities in the order of their
// visitor's key, whatever order they were observed in: a rowid table keeps
// its rows in insertion order, so rowids show the order of the inserts
// (and of their unique index's entries).
func TestLearnInsertsNewPeopleInKeyOrder(t *testing.T) {
	db := openTestDB(t)
	var ids []*store.Identity
	for i, v := range []string{"v5", "v1", "v9", "v3", "v7"} {
		ids = append(ids, &store.Identity{SiteKey: "s", VisitorID: v, LikelyNew: true,
			Hashes: map[string][]string{store.KeyEmail: {strings.Repeat(fmt.Sprint(i), 64)}}})
	}
	if err := db.LearnIdentities(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	got := column[int64](t, db.id.r, `SELECT vk FROM identities ORDER BY rowid`)
	if len(got) != len(ids) || !slices.IsSorted(got) {
		t.Errorf("people inserted with keys in order %d, want %d of them ascending", got, len(ids))
	}
}
