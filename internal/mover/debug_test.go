package mover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		for _, want := range []string{"stat kopia.repository", "get kopia.blobcfg", "first byte", "connect"} {
			if !strings.Contains(all, want) {
				t.Errorf("debug lines lack %q:\n%s", want, all)
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
