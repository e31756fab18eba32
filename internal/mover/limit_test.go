package mover

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// --upload-limit and --download-limit hold: a backup and a restore of 12 MiB of random data at
// 4 MiB/s take about 3 s each, never much less (the buckets start empty, so there is no burst).
func TestBandwidthLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~8 s")
	}
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 12<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "blob.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 20
	s := fileSettings(t)
	if err := s.Repos().Ensure(ctx, s.Namespace); err != nil {
		t.Fatal(err)
	}
	s.Limits = repo.Limits{UploadBytesPerSecond: limit}
	start := time.Now()
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Compression: "none"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	checkRate(t, "upload", res.UploadedBytes, time.Since(start), limit)

	s.Limits = repo.Limits{DownloadBytesPerSecond: limit}
	start = time.Now()
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: t.TempDir()}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	checkRate(t, "download", int64(len(data)), time.Since(start), limit)
}

func checkRate(t *testing.T, what string, n int64, d time.Duration, limit float64) {
	t.Helper()
	rate := float64(n) / d.Seconds()
	t.Logf("%s: %d bytes in %v: %.2f MiB/s (limit %.2f MiB/s)", what, n, d.Round(time.Millisecond), rate/(1<<20), limit/(1<<20))
	if rate > 1.1*limit {
		t.Errorf("%s at %.2f MiB/s, over the limit of %.2f MiB/s by more than 10%%", what, rate/(1<<20), limit/(1<<20))
	}
	if n < 10<<20 {
		t.Errorf("%s moved only %d bytes: the measure means nothing", what, n)
	}
}
