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
// sortKeyRows): by site and visitor for identities, by primary key for
// identity_keys, whatever order the observations came in.
func TestLearnSortsRowsByKey(t *testing.T) {
	t.Parallel()
	ids := []*store.Identity{
		{SiteKey: "s2", VisitorID: "a"},
		{SiteKey: "s1", VisitorID: "c"},
		{SiteKey: "s1", VisitorID: "a"},
		{SiteKey: "s2", VisitorID: "0"},
	}
	sortByVisitor(ids)
	var got []string
	for _, id := range ids {
		got = append(got, id.SiteKey+"/"+id.VisitorID)
	}
	if want := []string{"s1/a", "s1/c", "s2/0", "s2/a"}; !slices.Equal(got, want) {
		t.Errorf("identities in order %q, want %q", got, want)
	}
	want := []keyRow{
		{"em", "aa", "s1", "v3"},
		{"em", "aa", "s1", "v9"},
		{"em", "aa", "s2", "v2"},
		{"em", "cc", "s1", "v1"},
		{"external_id", "bb", "s1", "v1"},
	}
	var rows []keyRow
	for _, i := range []int{3, 0, 4, 2, 1} { // as observed: out of order
		rows = append(rows, want[i])
	}
	sortKeyRows(rows)
	if !slices.Equal(rows, want) {
		t.Errorf("key rows in order %v, want %v", rows, want)
	}
}

// LearnIdentities appends new people to identities in (site, visitor)
// order, whatever order they were observed in: a rowid table keeps its
// rows in insertion order, so rowids show the order of the inserts (and
// of their unique index's entries).
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
	rows, err := db.id.r.Query(`SELECT visitor_id FROM identities ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"v1", "v3", "v5", "v7", "v9"}; !slices.Equal(got, want) {
		t.Errorf("people inserted in order %q, want %q", got, want)
	}
}
