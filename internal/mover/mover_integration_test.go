//go:build integration

package mover

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// TestMain lets a test run the mover in a child process (the same test binary), so the process
// can be killed half-way or run as another user.
func TestMain(m *testing.M) {
	if os.Getenv("PVBACKUP_TEST_CHILD") == "backup" {
		s := Settings{Location: os.Getenv("PVBACKUP_LOCATION"), Namespace: "team-a", Password: os.Getenv("PVBACKUP_PASSWORD"), CacheDir: os.Getenv("PVBACKUP_CACHE_DIR")}
		_, err := RunBackup(context.Background(), s, BackupConfig{Source: os.Getenv("PVBACKUP_SOURCE"), PVC: "data", OnError: os.Getenv("PVBACKUP_ON_ERROR")}, JSONLines(os.Stdout))
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// bigTree is the full tree the issue asks for: every entry kind, a 1 GiB sparse file and 10,000
// small files.
var bigTree = treeSpec{smallFiles: 10000, sparse: 1 << 30}

func roundTrip(t *testing.T, s Settings) {
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, bigTree)
	want := describeTree(t, src)

	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b1", Parallel: 4}, func(Event) {})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.Files != 10009 {
		t.Errorf("backed up %d files; want 10009", res.Files)
	}
	// Change one file: the next backup has the first as parent and uploads little.
	if err := os.WriteFile(filepath.Join(src, "many", "d042", "f04242"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "many", "d042", "f04242"), fixedTime, fixedTime); err != nil {
		t.Fatal(err)
	}
	want = describeTree(t, src)
	res2, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b2"}, func(Event) {})
	if err != nil {
		t.Fatalf("second backup: %v", err)
	}
	if res2.ParentID != res.SnapshotID || res2.CachedFiles < 10000 || res2.UploadedBytes > 4<<20 {
		t.Errorf("second backup: parent %s (want %s), %d cached files, %d bytes uploaded; want nearly everything reused",
			res2.ParentID, res.SnapshotID, res2.CachedFiles, res2.UploadedBytes)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res2.SnapshotID, Target: dst, Sparse: true}, func(Event) {}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	compareTrees(t, want, describeTree(t, dst))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dst, "sparse.img"), &st); err != nil || st.Blocks*512 > 64<<20 {
		t.Errorf("restored sparse file uses %d bytes on disk; want it sparse", st.Blocks*512)
	}
}

func TestRoundTripFile(t *testing.T) {
	s := Settings{Location: "file://" + filepath.Join(t.TempDir(), "location"), Namespace: "team-a", Password: "pw-file", CacheDir: t.TempDir()}
	roundTrip(t, s)
}

func TestRoundTripSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	roundTrip(t, Settings{Location: srv.URL("backups/prod"), Namespace: "team-a", Password: "pw-s3", CacheDir: t.TempDir()})
}

func TestUnreachableBucketFailsFast(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	loc := "s3://nowhere/prefix?endpoint=http://127.0.0.1:1&region=us-east-1&use_path_style=true&disable_https=true"
	start := time.Now()
	res, err := RunBackup(context.Background(), Settings{Location: loc, Namespace: "team-a", Password: "pw"}, BackupConfig{Source: t.TempDir(), PVC: "data"}, func(Event) {})
	if err == nil {
		t.Fatal("backup to an unreachable bucket succeeded")
	}
	if d := time.Since(start); d > store.ProbeTimeout+5*time.Second {
		t.Errorf("failed after %v; want seconds", d)
	}
	if !strings.Contains(res.Error, store.Redact(loc)) || !strings.Contains(res.Error, "not reachable") {
		t.Errorf("error %q does not name the location", res.Error)
	}
}

// TestKilledUpload kills a mover half-way through an upload, then checks a new backup succeeds,
// restores exactly, and the whole repository verifies.
func TestKilledUpload(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	s := Settings{Location: srv.URL("killed"), Namespace: "team-a", Password: "pw-kill", CacheDir: t.TempDir()}
	src := t.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{3}))
	for i := range 6 {
		b := make([]byte, 64<<20)
		for j := 0; j+8 <= len(b); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("random-%d.bin", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	makeTree(t, filepath.Join(src, "tree"), treeSpec{smallFiles: 500})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PVBACKUP_TEST_CHILD=backup", "PVBACKUP_LOCATION="+s.Location, "PVBACKUP_PASSWORD="+s.Password,
		"PVBACKUP_SOURCE="+src, "PVBACKUP_CACHE_DIR="+s.CacheDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == EventProgress && ev.UploadedBytes > 64<<20 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatal("the mover finished before it could be killed half-way: make the source bigger")
	}

	ctx := context.Background()
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {})
	if err != nil {
		t.Fatalf("backup after a killed one: %v", err)
	}
	dst := t.TempDir()
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, describeTree(t, src), describeTree(t, dst))

	r, closeRepo, err := openRepo(ctx, s, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	if err := repo.Verify(ctx, r, 100); err != nil {
		t.Fatalf("kopia verification after a killed upload: %v", err)
	}
}
