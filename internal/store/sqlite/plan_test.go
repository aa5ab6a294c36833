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

// The dashboard's overview reads indexes, not the day's rows: Activity
// counts index ranges without a visit to the table and without sorting the
// day's rows by minute, and Errors reads only the rows with an error.
func TestOverviewUsesIndexes(t *testing.T) {
	db := openTestDB(t)
	p := queryPlan(t, db.r, activitySQL, 0, 86400000)
	for _, step := range strings.Split(p, "; ") {
		if strings.Contains(step, "TEMP B-TREE") || strings.Contains(step, "outbox") && !strings.Contains(step, "COVERING INDEX") {
			t.Errorf("Activity's plan %q: step %q sorts or reads rows of outbox", p, step)
		}
	}
	for _, index := range []string{"outbox_created", "outbox_delivered", "outbox_dead"} {
		if !strings.Contains(p, "COVERING INDEX "+index) {
			t.Errorf("Activity's plan %q does not count in %s", p, index)
		}
	}
	if p := queryPlan(t, db.r, errorsSQL, 0, 10); !strings.Contains(p, "outbox_errors") {
		t.Errorf("Errors' plan %q does not use outbox_errors", p)
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
