package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
)

// needRoot skips a test that mounts file systems, unless CI=true, where
// root is available and the test must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("storage fault tests need root (mount -t tmpfs); CI must run them as root")
	}
	t.Skip("storage fault tests need root to mount a small tmpfs; run as root (CI=true requires it)")
}

func run(t *testing.T, name string, args ...string) error {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountTmpfs mounts a tmpfs of size (e.g. "16m") and returns its path;
// it is unmounted at cleanup, after the relays using it have stopped.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := run(t, "mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run(t, "mount", "-o", "remount,rw", dir)
		if err := run(t, "umount", dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// fill writes a file until the file system is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// postUntil posts batches of fresh events until want is answered (or n
// requests were made) and fails on any status but 200 and 503.
func (r *relay) postUntil(t *testing.T, key, prefix string, want, n int) bool {
	t.Helper()
	for i := range n {
		evs := make([]map[string]any, 50)
		for j := range evs {
			evs[j] = serverEvent(fmt.Sprintf("%s-%d-%d", prefix, i, j), time.Now())
		}
		code := r.post(t, key, evs...)
		if code != 200 && code != 503 {
			t.Fatalf("POST /v1/events = %d with storage trouble, want 200 (stored) or 503", code)
		}
		if code == want {
			return true
		}
		if code == 503 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return false
}

// TestFullDataDirectory: with the data directory's file system full,
// ingest answers 503 (and never a 2xx for an event it could not store);
// once space returns it accepts again, and every acknowledged event is
// delivered.
func TestFullDataDirectory(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("-short: storage faults take a few seconds")
	}
	dir := mountTmpfs(t, "24m")
	r := newRelay(t, options{dataDir: filepath.Join(dir, "data")})
	site, key := r.addSite(t, "10710", "tok")
	if !r.postUntil(t, key, "before", 200, 5) {
		t.Fatal("healthy relay did not accept events")
	}
	browser := r.beacon(t, site.Key, "beacon-before") != 404
	filler := fill(t, dir)
	if !r.postUntil(t, key, "full", 503, 400) {
		t.Fatalf("a full disk never made ingest answer 503; statuses %v", r.acked.statuses())
	}
	if browser {
		// A beacon is one small event: it may still fit in WAL space that a
		// checkpoint freed for reuse. Then it is stored, and
		// assertNoLoss below proves it is delivered; otherwise 503.
		for i := range 3 {
			if code := r.beacon(t, site.Key, fmt.Sprintf("beacon-full-%d", i)); code != 503 && code != 204 {
				t.Errorf("POST /e on a full disk = %d, want 503 (or 204 if it was stored)", code)
			}
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.postUntil(t, key, fmt.Sprintf("after%d", time.Now().UnixNano()), 200, 1) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not recover after space returned; statuses %v", r.acked.statuses())
		}
	}
	r.assertNoLoss(t, "10710", 30*time.Second)
}

// TestReadOnlyDataDirectory: a relay refuses to start on a read-only data
// directory, saying why, so nothing can be acknowledged that cannot be
// stored; it starts and delivers everything once the directory is writable
// again.
//
// Linux refuses to remount a file system read-only while a process holds a
// file on it open for writing (EBUSY), which SQLite always does, so the
// relay is stopped, the tmpfs remounted read-only and a relay started on
// it. TestDataDirectoryGoesReadOnly covers the disk turning read-only under
// a running relay.
func TestReadOnlyDataDirectory(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("-short: storage faults take a few seconds")
	}
	dir := mountTmpfs(t, "24m")
	data := filepath.Join(dir, "data")
	r := newRelay(t, options{dataDir: data})
	_, key := r.addSite(t, "10711", "tok")
	if !r.postUntil(t, key, "before", 200, 5) {
		t.Fatal("healthy relay did not accept events")
	}
	if err := run(t, "mount", "-o", "remount,ro", dir); err == nil {
		t.Fatal("the kernel remounted the data directory read-only under open SQLite files; this test assumes EBUSY")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.app.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "mount", "-o", "remount,ro", dir); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DataDir: data, GraphURL: r.graph.URL, BatchLinger: 20 * time.Millisecond, Demo: false}
	a, err := app.New(context.Background(), cfg, r.app.Logger)
	if err == nil {
		a.Shutdown(context.Background())
		t.Fatal("the relay started on a read-only data directory; it must refuse")
	}
	if !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("start on a read-only data directory: %v; want the error to say the file system is read-only", err)
	}
	if err := run(t, "mount", "-o", "remount,rw", dir); err != nil {
		t.Fatal(err)
	}
	a, err = app.New(context.Background(), cfg, r.app.Logger)
	if err != nil {
		t.Fatalf("relay does not start once the data directory is writable again: %v", err)
	}
	again := &relay{app: a, graph: r.graph, logs: r.logs, acked: r.acked}
	again.url = serve(t, a)
	if !again.postUntil(t, key, "rw", 200, 5) {
		t.Fatalf("ingest did not recover; statuses %v", again.acked.statuses())
	}
	again.assertNoLoss(t, "10711", 30*time.Second)
}

// TestDataDirectoryGoesReadOnly is the live case the kernel allows: an
// ext4 file system (in a loop-mounted image) mounted errors=remount-ro hits
// an error and turns read-only under the running relay, as a failing disk
// does. Ingest must answer 503 from then on, never 2xx; after the operator
// remounts it (here: restart on a fresh mount) every acknowledged event is
// delivered.
func TestDataDirectoryGoesReadOnly(t *testing.T) {
	needRoot(t)
	if testing.Short() {
		t.Skip("-short: storage faults take a few seconds")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed; the tmpfs tests cover full and read-only directories", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if err := run(t, "mkfs.ext4", "-q", "-F", img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mount := func() error { return run(t, "mount", "-o", "loop,errors=remount-ro", img, dir) }
	if err := mount(); err != nil {
		t.Skipf("cannot loop-mount an ext4 image here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = run(t, "umount", dir)
		}
	})
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	trigger := "/sys/fs/ext4/" + filepath.Base(strings.TrimSpace(string(out))) + "/trigger_fs_error"
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("kernel has no %s", trigger)
	}
	data := filepath.Join(dir, "data")
	r := newRelay(t, options{dataDir: data})
	site, key := r.addSite(t, "10712", "tok")
	if !r.postUntil(t, key, "before", 200, 5) {
		t.Fatal("healthy relay did not accept events")
	}
	browser := r.beacon(t, site.Key, "beacon-before") != 404
	if err := os.WriteFile(trigger, []byte("capirelay faulttest\n"), 0o200); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if r.postUntil(t, key, fmt.Sprintf("ro%d", i), 200, 1) {
			t.Fatalf("ingest acknowledged events on a read-only file system; statuses %v", r.acked.statuses())
		}
		if code := r.beacon(t, site.Key, fmt.Sprintf("beacon-ro-%d", i)); browser && code != 503 {
			t.Errorf("POST /e on a read-only file system = %d, want 503", code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.app.Shutdown(ctx) // errors expected: the store cannot checkpoint
	if err := run(t, "umount", dir); err != nil {
		t.Fatal(err)
	}
	mounted = false
	_ = run(t, "e2fsck", "-p", img) // as an operator would; exit 1 means "fixed"
	if err := mount(); err != nil {
		t.Fatal(err)
	}
	mounted = true
	cfg := config.Config{DataDir: data, GraphURL: r.graph.URL, BatchLinger: 20 * time.Millisecond, Demo: false}
	a, err := app.New(context.Background(), cfg, r.app.Logger)
	if err != nil {
		t.Fatalf("relay does not start on the repaired file system: %v", err)
	}
	again := &relay{app: a, graph: r.graph, logs: r.logs, acked: r.acked}
	again.url = serve(t, a)
	if !again.postUntil(t, key, "after", 200, 5) {
		t.Fatalf("ingest did not recover; statuses %v", again.acked.statuses())
	}
	again.assertNoLoss(t, "10712", 30*time.Second)
}
