package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// compareVerify reads back every file of the mover's last S3 snapshot twice over, the tools
// interleaved, best of reps: with the plugin's verify of a volume (what `verify --read-data 100`
// does per volume: open, list the packs, walk the tree, read every file) and with the kopia CLI's
// `snapshot verify --verify-files-percent=100` connected to the same repository (content cache 0,
// its fastest setting, as for restores).
func compareVerify(srv *s3server.Server, m *moverT) (string, error) {
	snap := lastSnapshot[m.name]
	if snap == "" {
		return "", fmt.Errorf("%s has no snapshot", m.name)
	}
	// The mover's repository is a plain Kopia repository at <location prefix>/kopia/<namespace>/.
	prefix := m.location[len("s3://"+srv.Bucket+"/"):]
	prefix = prefix[:strings.IndexByte(prefix, '?')] + "/kopia/bench/"
	dir := filepath.Join(work, "kopia-verify")
	_ = os.RemoveAll(dir)
	if _, err := execRun(kopiaEnv(dir), kopiaBin, "repository", "connect", "s3", "--cache-directory", filepath.Join(dir, "cache"),
		"--bucket", srv.Bucket, "--prefix", prefix, "--endpoint", strings.TrimPrefix(srv.Endpoint, "http://"), "--disable-tls",
		"--region", "us-east-1", "--access-key", srv.AccessKey, "--secret-access-key", srv.SecretKey); err != nil {
		return "", err
	}
	if _, err := execRun(kopiaEnv(dir), kopiaBin, "cache", "set", "--content-cache-size-mb=0"); err != nil {
		return "", err
	}
	var best [2]time.Duration
	keep := func(i int, d time.Duration) {
		if best[i] == 0 || d < best[i] {
			best[i] = d
		}
	}
	var alt time.Duration
	for rep := range reps {
		if verifyParallel > 0 {
			d, _, err := pluginVerify(m, snap, verifyParallel)
			if err != nil {
				return "", err
			}
			if alt == 0 || d < alt {
				alt = d
			}
			fmt.Printf("  verify 100%%  plugin with %d files in parallel %6.2fs  (run %d)\n", verifyParallel, d.Seconds(), rep+1)
		}
		d, read, err := pluginVerify(m, snap, 0)
		if err != nil {
			return "", err
		}
		if read < treeBytes {
			return "", fmt.Errorf("plugin verify read %d bytes; the tree has %d", read, treeBytes)
		}
		keep(0, d)
		r, err := execRun(kopiaEnv(dir), kopiaBin, "snapshot", "verify", "--verify-files-percent=100", snap)
		if err != nil {
			return "", err
		}
		keep(1, r.wall)
		fmt.Printf("  verify 100%%  plugin %6.2fs  kopia CLI %6.2fs  (run %d)\n", d.Seconds(), r.wall.Seconds(), rep+1)
	}
	mb := float64(treeBytes) / 1e6
	return fmt.Sprintf("verify --read-data 100 (S3): plugin %.2fs %.0f MB/s, kopia snapshot verify --verify-files-percent=100 %.2fs %.0f MB/s: throughput plugin/kopia = %.2f (goal ≥ 0.9)",
		best[0].Seconds(), mb/best[0].Seconds(), best[1].Seconds(), mb/best[1].Seconds(), best[1].Seconds()/best[0].Seconds()), nil
}

// pluginVerify is internal/verify's work for one volume, in process.
func pluginVerify(m *moverT, snap string, parallel int) (time.Duration, int64, error) {
	ctx := context.Background()
	start := time.Now()
	r, closeFn, err := (&repo.Service{Location: m.location, Key: repo.OneKey(password), CacheDir: work}).Open(ctx, "bench")
	if err != nil {
		return 0, 0, err
	}
	defer closeFn()
	blobs, err := r.BlobMap(ctx)
	if err != nil {
		return 0, 0, err
	}
	st, err := repo.VerifySnapshot(ctx, r, snap, repo.VerifyOptions{ReadPercent: 100, Blobs: blobs, Parallel: parallel})
	if err != nil {
		return 0, 0, err
	}
	if st.ProblemCount > 0 {
		return 0, 0, fmt.Errorf("plugin verify found %d problems, first %s: %s", st.ProblemCount, st.Problems[0].Path, st.Problems[0].Error)
	}
	return time.Since(start), st.ReadBytes, nil
}
