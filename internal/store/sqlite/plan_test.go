package sqlite

import (
	"database/sql"
	"strings"
	"testing"
)

// The periodic jobs must use indexes: a scan of the outbox holds SQLite's
// write lock for seconds once it has millions of rows, and ingest stalls.
func TestHousekeepingUsesIndexes(t *testing.T) {
	db := openTestDB(t)
	for q, want := range map[string]string{
		`SELECT id FROM outbox WHERE delivered_at > 0 AND delivered_at < 1 AND state='delivered' LIMIT 10`:                                "outbox_delivered",
		`SELECT min(site_key) FROM outbox WHERE state IN ('pending','inflight') AND site_key > 'a'`:                                       "outbox_due",
		`SELECT id, next_attempt FROM outbox WHERE state IN ('pending','inflight') AND site_key='s' ORDER BY next_attempt LIMIT 2`:        "outbox_due",
		`SELECT site_key, event_name, event_id FROM seen WHERE seen_at < 1 LIMIT 10`:                                                      "seen_at",
		`SELECT id FROM outbox WHERE state='held' AND site_key='s' AND visitor_id='v'`:                                                    "outbox_held",
		`SELECT id FROM outbox WHERE state IN ('pending','inflight') AND site_key='s' AND next_attempt<=1 ORDER BY next_attempt LIMIT 10`: "outbox_due",
	} {
		if p := queryPlan(t, db.r, q); !strings.Contains(p, want) {
			t.Errorf("%s\nplan %q does not use %s", q, p, want)
		}
	}
}

// queryPlan is SQLite's plan for q (with args bound), its steps joined by "; ".
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}
