package sqlite

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/secret"
)

// The periodic jobs must use indexes: a scan of the outbox holds SQLite's
// write lock for seconds once it has millions of rows, and ingest stalls.
func TestHousekeepingUsesIndexes(t *testing.T) {
	box, _ := secret.New(bytes.Repeat([]byte{1}, secret.KeySize))
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), box)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for q, want := range map[string]string{
		`SELECT id FROM outbox WHERE delivered_at > 0 AND delivered_at < 1 AND state='delivered' LIMIT 10`:                                "outbox_delivered",
		`SELECT min(site_key) FROM outbox WHERE state IN ('pending','inflight') AND site_key > 'a'`:                                       "outbox_due",
		`SELECT id, next_attempt FROM outbox WHERE state IN ('pending','inflight') AND site_key='s' ORDER BY next_attempt LIMIT 2`:        "outbox_due",
		`SELECT site_key, event_name, event_id FROM seen WHERE seen_at < 1 LIMIT 10`:                                                      "seen_at",
		`SELECT id FROM outbox WHERE state='held' AND site_key='s' AND visitor_id='v'`:                                                    "outbox_held",
		`SELECT id FROM outbox WHERE state IN ('pending','inflight') AND site_key='s' AND next_attempt<=1 ORDER BY next_attempt LIMIT 10`: "outbox_due",
	} {
		rows, err := db.r.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, want) {
			t.Errorf("%s\nplan %q does not use %s", q, p, want)
		}
	}
}
