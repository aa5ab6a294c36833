package sqlite_test

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// filesHold reports which of needles the database file or its WAL holds,
// each once (a checkpoint may have left one in both).
func filesHold(t *testing.T, dir string, needles [][]byte) []int {
	t.Helper()
	var found []int
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal", sqlite.IdentityFileName, sqlite.IdentityFileName + "-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for i, n := range needles {
			if bytes.Contains(data, n) && !slices.Contains(found, i) {
				found = append(found, i)
			}
		}
	}
	return found
}

// TestForgetLeavesNoBytes reads the database file and its WAL: after
// forget, neither holds the person's visitor id, email hash or event ids,
// nor any sealed payload of their events (outbox and sandbox) as it was
// stored before.
func TestForgetLeavesNoBytes(t *testing.T) {
	db, dir := mustOpen(t)
	var needles [][]byte
	var names []string
	m := storetest.ForgetScenario(t, db, func(m storetest.ForgetMarks) {
		for _, s := range m.All() {
			needles, names = append(needles, []byte(s)), append(names, s)
		}
		if found := filesHold(t, dir, needles); len(found) != len(needles) {
			t.Fatalf("before forget the files hold %d of %d marks; the test proves nothing", len(found), len(needles))
		}
		// The sealed blobs themselves: a prefix of each is enough to find it.
		raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		rows, err := raw.Query(`SELECT 'outbox ' || o.event_id, p.payload FROM outbox o JOIN outbox_payload p ON p.id = o.id
			WHERE o.event_id NOT IN (?) UNION ALL SELECT 'sandbox ' || id, payload FROM sandbox`, m.Kept[0])
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var blob []byte
			if err := rows.Scan(&name, &blob); err != nil {
				t.Fatal(err)
			}
			needles, names = append(needles, blob[:min(len(blob), 64)]), append(names, "sealed "+name)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
	if len(needles) != len(m.All())+4+2 {
		t.Fatalf("collected %d needles, want marks, 4 outbox and 2 sandbox payloads", len(needles))
	}
	for _, i := range filesHold(t, dir, needles) {
		t.Errorf("after forget the database files still hold %s", names[i])
	}
	if found := filesHold(t, dir, [][]byte{[]byte(m.Kept[0])}); len(found) == 0 {
		t.Error("the other person's event is gone too")
	}
}
