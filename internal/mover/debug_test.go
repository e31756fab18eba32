package mover

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// With Settings.Debug a backup's Result carries its open time and the storage calls of the open
// with their HTTP-level timings (how the open-time stall on the test cluster was found), and still
// fits the termination message; without it, only the open time.
func TestBackupDebugTimings(t *testing.T) {
	s3 := s3server.Fake(t)
	s3.SetEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, debug := range []bool{true, false} {
		s := Settings{Location: s3.URL("loc"), Namespace: "ns", Password: "pw", CacheDir: t.TempDir(), Debug: debug}
		res, err := RunBackup(context.Background(), s, BackupConfig{Source: src, PVC: "p"}, func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		if res.OpenSeconds <= 0 || res.OpenSeconds > res.DurationSeconds {
			t.Errorf("debug=%v: open %.3fs of %.3fs", debug, res.OpenSeconds, res.DurationSeconds)
		}
		if !debug {
			if len(res.Debug) != 0 {
				t.Errorf("debug off: %d debug lines", len(res.Debug))
			}
			continue
		}
		all := strings.Join(res.Debug, "\n")
		for _, want := range []string{"stat kopia.repository", "get kopia.blobcfg", "first byte"} {
			if !strings.Contains(all, want) {
				t.Errorf("debug lines lack %q:\n%s", want, all)
			}
		}
		// Each request says which connection it used: a new one (with its connect time) or one
		// kept alive (whether the location check opened it before tracing began is timing).
		for _, l := range res.Debug {
			if strings.Contains(l, "first byte") && !strings.Contains(l, "new connect") && !strings.Contains(l, "reused idle") {
				t.Errorf("a request without its connection: %s", l)
			}
		}
		if len(res.Debug) > maxDebugLines+1 {
			t.Errorf("%d debug lines, bound %d", len(res.Debug), maxDebugLines+1)
		}
		if b := MarshalResult(res); len(b) == 0 || len(b) > MaxResultBytes {
			t.Errorf("result of %d bytes does not fit the termination message", len(b))
		}
	}
}

// An incremental backup reads the parent snapshot's directory listings with one S3 request per
// metadata pack, not one per directory (the 0.2 s the mover's S3 incremental lost to the kopia CLI).
func TestIncrementalReadsMetadataPacksOnce(t *testing.T) {
	s3 := s3server.Fake(t)
	s3.SetEnv(t)
	src := t.TempDir()
	const dirs = 30
	for i := range dirs {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := Settings{Location: s3.URL("loc"), Namespace: "ns", Password: "pw", CacheDir: t.TempDir()}
	ctx := context.Background()
	if _, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "p"}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	trace := repo.NewTracer()
	r, closeFn, err := s.tracedRepos(trace).Open(ctx, s.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if _, err := Backup(ctx, r, BackupConfig{Source: src, Namespace: "ns", PVC: "p"}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	calls, requests := 0, 0
	for _, c := range trace.Calls() {
		if c.Op == "get" && strings.HasPrefix(c.Blob, "q") {
			calls++
			requests += len(c.Attempts)
		}
	}
	if calls < dirs {
		t.Fatalf("the incremental read %d directory listings of %d directories: is it incremental?", calls, dirs)
	}
	if requests > 3 {
		t.Errorf("the incremental made %d S3 requests for %d metadata reads; want one per metadata pack (≤ 3)", requests, calls)
	}
}
