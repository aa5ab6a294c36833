// The mutex methods below follow those of modernc.org/sqlite/lib's
// mutex.go (Copyright 2021 The Sqlite Authors, BSD-style licence), which
// that package installs on every OS but Linux.

package sqlite

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite enters a connection's mutex on every call into it: each bound
// argument, each column read, each step. The driver opens connections in
// serialized mode (SQLITE_OPEN_FULLMUTEX, with no option for another),
// and under realistic /v1/events at full load those mutexes were 6 % of
// the relay's CPU samples. They guard nothing here: database/sql never
// uses a connection from two goroutines at once (database/sql/driver:
// "Conn ... is not used concurrently by multiple goroutines"), which is
// why SQLite's multi-thread mode (SQLITE_OPEN_NOMUTEX, mattn/go-sqlite3's
// _mutex=no) exists. So the relay installs SQLite's mutex methods itself,
// Go mutexes as the driver uses on other systems, and gives every
// connection opened after start-up a mutex that does nothing. SQLite's
// own shared state (memory, page cache, VFS, initialization) keeps real
// mutexes. Measured on 2 CPUs, realistic /v1/events at full load, three
// alternating pairs of the binary: 44.4 against 47.8 µs of relay CPU per
// event and 32.3k against 30.3k events/s (the driver patched to open
// connections with SQLITE_OPEN_NOMUTEX: 45.9 against 50.5 µs);
// BenchmarkEnqueue/100: 736 against 848 µs. Go mutexes alone, every
// connection keeping a real one, saved nothing measurable: the cost is in
// the number of calls.
//
// A recursive mutex is what SQLite allocates for a connection
// (openDatabase) and, during sqlite3_initialize only, for initialization
// itself; installMutexMethods initializes SQLite before it makes recursive
// mutexes no-ops. TestRecursiveMutexSites checks that the translated SQLite
// allocates recursive mutexes nowhere else.
//
// mutexMethodsErr says why they could not be installed: SQLite then keeps
// its own, correct and slower.
var mutexMethodsErr = installMutexMethods()

// connMutexesOff makes mutexAlloc give recursive mutexes that do nothing.
var connMutexesOff atomic.Bool

func installMutexMethods() error {
	tls := libc.NewTLS()
	defer tls.Close()
	args := libc.Xmalloc(tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if args == 0 {
		return fmt.Errorf("sqlite mutex methods: out of memory")
	}
	defer libc.Xfree(tls, args)
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_MUTEX, libc.VaList(args, uintptr(unsafe.Pointer(&mutexMethods)))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite mutex methods: %s", libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	}
	if rc := sqlite3.Xsqlite3_initialize(tls); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite initialize: %s", libc.GoString(sqlite3.Xsqlite3_errstr(tls, rc)))
	}
	connMutexesOff.Store(true)
	return nil
}

// cfunc is a Go function as the translated C code calls it through a
// pointer.
func cfunc[F any](f F) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f F }{f})) }

var mutexMethods = sqlite3.Sqlite3_mutex_methods{
	FxMutexInit:    cfunc(func(*libc.TLS) int32 { return sqlite3.SQLITE_OK }),
	FxMutexEnd:     cfunc(func(*libc.TLS) int32 { return sqlite3.SQLITE_OK }),
	FxMutexAlloc:   cfunc(mutexAlloc),
	FxMutexFree:    cfunc(func(tls *libc.TLS, m uintptr) { libc.Xfree(tls, m) }),
	FxMutexEnter:   cfunc(mutexEnter),
	FxMutexTry:     cfunc(mutexTry),
	FxMutexLeave:   cfunc(mutexLeave),
	FxMutexHeld:    cfunc(mutexHeld),
	FxMutexNotheld: cfunc(mutexNotheld),
}

// mutex is an SQLite mutex. id is the libc.TLS (the connection's thread
// of C) holding it; a recursive one counts its entries in cnt. A noop
// one is a connection's.
type mutex struct {
	sync.Mutex
	cnt       int32
	id        int32
	recursive bool
	noop      bool
}

// staticMutexes are SQLite's static mutexes, by type
// (SQLITE_MUTEX_STATIC_MAIN and up).
var staticMutexes [sqlite3.SQLITE_MUTEX_STATIC_VFS3 + 1]mutex

// mutexAt is the mutex at p, which SQLite got from mutexAlloc: memory of
// libc's allocator or a static mutex, which Go's GC never moves.
func mutexAt(p uintptr) *mutex { return *(**mutex)(unsafe.Pointer(&p)) }

func mutexAlloc(tls *libc.TLS, typ int32) uintptr {
	switch {
	case typ == sqlite3.SQLITE_MUTEX_FAST || typ == sqlite3.SQLITE_MUTEX_RECURSIVE:
		p := libc.Xcalloc(tls, 1, types.Size_t(unsafe.Sizeof(mutex{})))
		if p != 0 {
			m := mutexAt(p)
			m.recursive = typ == sqlite3.SQLITE_MUTEX_RECURSIVE
			m.noop = m.recursive && connMutexesOff.Load()
		}
		return p
	case typ >= sqlite3.SQLITE_MUTEX_STATIC_MAIN && int(typ) < len(staticMutexes):
		return uintptr(unsafe.Pointer(&staticMutexes[typ]))
	}
	return 0
}

func mutexEnter(tls *libc.TLS, p uintptr) {
	if p == 0 {
		return
	}
	m := mutexAt(p)
	switch {
	case m.noop:
	case m.recursive && atomic.LoadInt32(&m.id) == tls.ID:
		// Only this thread sets id to its own, so it holds m.
		m.cnt++
	default:
		m.Lock()
		atomic.StoreInt32(&m.id, tls.ID)
		m.cnt = 1
	}
}

func mutexTry(tls *libc.TLS, p uintptr) int32 {
	if p == 0 {
		return sqlite3.SQLITE_OK
	}
	m := mutexAt(p)
	switch {
	case m.noop:
	case m.recursive && atomic.LoadInt32(&m.id) == tls.ID:
		m.cnt++
	case m.TryLock():
		atomic.StoreInt32(&m.id, tls.ID)
		m.cnt = 1
	default:
		return sqlite3.SQLITE_BUSY
	}
	return sqlite3.SQLITE_OK
}

func mutexLeave(tls *libc.TLS, p uintptr) {
	if p == 0 {
		return
	}
	m := mutexAt(p)
	if m.noop {
		return
	}
	if m.cnt--; m.cnt == 0 {
		atomic.StoreInt32(&m.id, 0)
		m.Unlock()
	}
}

// mutexHeld and mutexNotheld serve SQLite's assertions only; a missing or
// no-op mutex counts as both (SQLite's rule for a missing one).
func mutexHeld(tls *libc.TLS, p uintptr) int32 {
	return libc.Bool32(p == 0 || mutexAt(p).noop || atomic.LoadInt32(&mutexAt(p).id) == tls.ID)
}

func mutexNotheld(tls *libc.TLS, p uintptr) int32 {
	return libc.Bool32(p == 0 || mutexAt(p).noop || atomic.LoadInt32(&mutexAt(p).id) != tls.ID)
}
