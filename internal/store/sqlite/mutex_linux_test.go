package sqlite

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The relay's mutex methods are in place: connections get mutexes that do
// nothing, SQLite's shared state real ones.
func TestMutexMethods(t *testing.T) {
	if mutexMethodsErr != nil {
		t.Fatalf("mutex methods not installed: %v", mutexMethodsErr)
	}
	a, b := libc.NewTLS(), libc.NewTLS()
	defer a.Close()
	defer b.Close()

	conn := sqlite3.Xsqlite3_mutex_alloc(a, sqlite3.SQLITE_MUTEX_RECURSIVE)
	defer sqlite3.Xsqlite3_mutex_free(a, conn)
	if conn == 0 || !mutexAt(conn).noop {
		t.Fatal("a recursive mutex allocated after start-up is not a no-op")
	}
	sqlite3.Xsqlite3_mutex_enter(a, conn)
	if rc := sqlite3.Xsqlite3_mutex_try(b, conn); rc != sqlite3.SQLITE_OK {
		t.Errorf("a connection's mutex excluded another thread: try = %d", rc)
	}
	sqlite3.Xsqlite3_mutex_leave(a, conn)

	for _, typ := range []int32{sqlite3.SQLITE_MUTEX_FAST, sqlite3.SQLITE_MUTEX_STATIC_MEM, sqlite3.SQLITE_MUTEX_STATIC_LRU, sqlite3.SQLITE_MUTEX_STATIC_VFS1} {
		m := sqlite3.Xsqlite3_mutex_alloc(a, typ)
		if m == 0 || mutexAt(m).noop {
			t.Fatalf("mutex type %d: %#x, want a real mutex", typ, m)
		}
		sqlite3.Xsqlite3_mutex_enter(a, m)
		if rc := sqlite3.Xsqlite3_mutex_try(b, m); rc != sqlite3.SQLITE_BUSY {
			t.Errorf("mutex type %d held by one thread: another's try = %d, want SQLITE_BUSY", typ, rc)
		}
		sqlite3.Xsqlite3_mutex_leave(a, m)
		if rc := sqlite3.Xsqlite3_mutex_try(b, m); rc != sqlite3.SQLITE_OK {
			t.Errorf("mutex type %d left: another's try = %d", typ, rc)
		}
		sqlite3.Xsqlite3_mutex_leave(b, m)
		if typ == sqlite3.SQLITE_MUTEX_FAST {
			sqlite3.Xsqlite3_mutex_free(a, m)
		}
	}
}

// SQLite allocates recursive mutexes for a connection and, while it
// initializes, for initialization itself (and for RBU's VFS, which the
// relay never uses); the no-op mutexes rely on that. A newer SQLite that
// allocates one for anything else fails this test, and then its use must
// be checked before the upgrade.
func TestRecursiveMutexSites(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "modernc.org/sqlite").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go list modernc.org/sqlite: %v", err)
		}
		t.Skipf("cannot find modernc.org/sqlite's source (go list: %v)", err)
	}
	all, err := filepath.Glob(filepath.Join(dir, "lib", "sqlite_*.go"))
	if err != nil {
		t.Fatal(err)
	}
	// The files this build compiles.
	var files []string
	for _, f := range all {
		if ok, err := build.Default.MatchFile(filepath.Dir(f), filepath.Base(f)); err != nil {
			t.Fatal(err)
		} else if ok {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no translated SQLite for this platform in %s", dir)
	}
	const recursive = `(?:_sqlite3MutexAlloc|Xsqlite3_mutex_alloc)\(tls, int32\(SQLITE_MUTEX_RECURSIVE\)\)`
	alloc := regexp.MustCompile(recursive)
	site := regexp.MustCompile(`(?m)^\s*(.*?)\s*=\s*` + recursive) // what each is assigned to
	known := map[string]bool{
		"(*Tsqlite3)(unsafe.Pointer(db)).Fmutex":   true, // openDatabase
		"_sqlite3Config.FpInitMutex":               true, // sqlite3_initialize
		"(*Trbu_vfs)(unsafe.Pointer(pNew)).Fmutex": true, // sqlite3rbu_create_vfs
	}
	sites := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := len(alloc.FindAllIndex(src, -1))
		matched := site.FindAllSubmatch(src, -1)
		if len(matched) != n {
			t.Errorf("%s: %d recursive mutex allocations, %d of them assigned as expected", filepath.Base(f), n, len(matched))
		}
		for _, m := range matched {
			if !known[string(m[1])] {
				t.Errorf("%s: a recursive mutex for %s", filepath.Base(f), m[1])
			}
		}
		sites += n
	}
	if sites == 0 {
		t.Fatal("found no recursive mutex allocation at all: the pattern no longer matches the translated source")
	}
}
