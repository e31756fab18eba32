//go:build integration

package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// jsonLogs is n bytes of application logs, as a volume of a service holds them.
func jsonLogs(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 7))
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	paths := []string{"/api/orders", "/api/cart", "/healthz", "/api/users/me", "/static/app.js"}
	var b bytes.Buffer
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Len() < n {
		t = t.Add(time.Duration(r.IntN(900)) * time.Millisecond)
		fmt.Fprintf(&b, `{"ts":%q,"level":%q,"path":%q,"status":%d,"user":%d,"latency_ms":%d,"trace":"%016x"}`+"\n",
			t.Format(time.RFC3339Nano), levels[r.IntN(len(levels))], paths[r.IntN(len(paths))], 200+r.IntN(4)*100, r.IntN(5000), r.IntN(2000), r.Uint64())
	}
	return b.Bytes()[:n]
}

// On a real object store, the default compression stores logs in well under half their size,
// leaves already compressed files (.gz) and random data as they are, and restores everything; the
// upload limit holds.
func TestCompressionAndLimitSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	ctx := context.Background()
	src := t.TempDir()
	random := make([]byte, 4<<20)
	_, _ = rand.Read(random)
	files := map[string][]byte{"app/current.log": jsonLogs(24<<20, 1), "app/old.log.gz": random[:2<<20], "db/pages.bin": random[2<<20:]}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored := map[string]int64{}
	for _, comp := range []string{"", "none"} {
		ns := "c-" + map[string]string{"": "default", "none": "none"}[comp]
		s := Settings{Location: srv.URL("backups"), Namespace: ns, Password: "pw", CacheDir: t.TempDir()}
		if err := s.Repos().Ensure(ctx, s.Namespace); err != nil {
			t.Fatal(err)
		}
		res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Compression: comp}, func(Event) {})
		if err != nil {
			t.Fatalf("backup with compression %q: %v", comp, err)
		}
		stored[comp] = res.UploadedBytes
		dst := t.TempDir()
		if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {}); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("compression %q: %s restored differs (%v)", comp, name, err)
			}
		}
	}
	t.Logf("stored: default %d bytes, none %d bytes (%.3f)", stored[""], stored["none"], float64(stored[""])/float64(stored["none"]))
	// 24 MiB of logs compress to about a third; the 4 MiB of random data cannot.
	if want := int64(24<<20)/2 + 4<<20 + 1<<20; stored[""] > want || stored["none"] < 28<<20 {
		t.Errorf("stored %d bytes with the default, %d with none; want at most %d with the default", stored[""], stored["none"], want)
	}

	// The upload limit holds on S3 too: 16 MiB of new random data at 4 MiB/s.
	more := make([]byte, 16<<20)
	_, _ = rand.Read(more)
	if err := os.WriteFile(filepath.Join(src, "db", "more.bin"), more, 0o644); err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 20
	s := Settings{Location: srv.URL("backups"), Namespace: "c-none", Password: "pw", CacheDir: t.TempDir(), Limits: repo.Limits{UploadBytesPerSecond: limit}}
	start := time.Now()
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Compression: "none"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	checkRate(t, "upload to SeaweedFS", res.UploadedBytes, d, limit)
	if rate := float64(res.UploadedBytes) / d.Seconds(); rate < 0.5*limit {
		t.Errorf("upload at %.2f MiB/s: the limit of %.2f MiB/s slowed it far more than asked", rate/(1<<20), float64(limit)/(1<<20))
	}
}
