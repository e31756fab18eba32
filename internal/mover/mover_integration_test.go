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

	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b1", Parallel: 4}, func(Event) {})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.Files != 10008 {
		t.Errorf("backed up %d files; want 10008", res.Files)
	}
	// Change one file: the next backup has the first as parent and uploads little.
	if err := os.WriteFile(filepath.Join(src, "many", "d042", "f04242"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "many", "d042", "f04242"), fixedTime, fixedTime); err != nil {
		t.Fatal(err)
	}
	want := describeTree(t, src)
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
	// The mover opens its namespace's repository prefix (<prefix>/kopia/<ns>/): the error names
	// the location with that prefix.
	if !strings.Contains(res.Error, "s3://nowhere/prefix?") || !strings.Contains(res.Error, "kopia%2Fteam-a") || !strings.Contains(res.Error, "not reachable") {
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

	r, closeRepo, err := s.Repos().Open(ctx, s.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	if err := repo.Verify(ctx, r, 100); err != nil {
		t.Fatalf("kopia verification after a killed upload: %v", err)
	}
}

// TestUnreadableFiles checks --on-error: fail names the unreadable paths and saves nothing; skip
// saves the rest and names them in the result. Root reads everything, so as root the mover runs
// in a child process as nobody.
func TestUnreadableFiles(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(base, "src")
	makeTree(t, src, treeSpec{smallFiles: 5})
	if err := os.WriteFile(filepath.Join(src, "locked.bin"), []byte("no"), 0o000); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "locked-dir"), 0o000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "private"), 0o755); err != nil { // nobody must read the rest
		t.Fatal(err)
	}
	for _, f := range []string{"private/secret.txt", "ünïcødé/emoji-🎉.txt"} { // the tree's private files
		if err := os.Chmod(filepath.Join(src, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(base, "cache")
	if err := os.Mkdir(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	loc := "file://" + filepath.Join(base, "location")
	if err := os.Mkdir(filepath.Join(base, "location"), 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(base, "location"), 0o777)

	run := func(onError string) ([]Event, error) {
		if os.Geteuid() != 0 {
			var ev events
			_, err := RunBackup(context.Background(), Settings{Location: loc, Namespace: "team-a", Password: "pw", CacheDir: cache},
				BackupConfig{Source: src, PVC: "data", OnError: onError}, ev.sink())
			return ev.parse(t), err
		}
		exe := filepath.Join(base, "mover.test")
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Dir = base
		cmd.Env = []string{"PVBACKUP_TEST_CHILD=backup", "PVBACKUP_LOCATION=" + loc, "PVBACKUP_PASSWORD=pw", "PVBACKUP_SOURCE=" + src,
			"PVBACKUP_CACHE_DIR=" + cache, "PVBACKUP_ON_ERROR=" + onError, "HOME=" + base, "TMPDIR=" + cache}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		var evs []Event
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if ev, perr := ParseEvent([]byte(line)); perr == nil {
				evs = append(evs, ev)
			}
		}
		if len(evs) == 0 {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("child mover printed no events: %v\n%s\n%s", err, out, stderr)
		}
		return evs, err
	}

	evs, err := run(OnErrorFail)
	res := evs[len(evs)-1].Result
	if err == nil || res == nil || res.OK || !strings.Contains(res.Error, "locked") || !strings.Contains(res.Error, "--on-error skip") || res.SnapshotID != "" {
		t.Fatalf("on-error fail: err %v, result %+v; want a failure naming the locked paths and no snapshot", err, res)
	}
	var paths []string
	for _, e := range evs {
		if e.Event == EventError {
			paths = append(paths, e.Path)
		}
	}
	if len(paths) != 2 {
		t.Errorf("error events for %v; want locked.bin and locked-dir", paths)
	}

	evs, err = run(OnErrorSkip)
	res = evs[len(evs)-1].Result
	if err != nil || res == nil || !res.OK || res.SnapshotID == "" || res.ErrorCount != 2 || len(res.Errors) != 2 {
		t.Fatalf("on-error skip: err %v, result %+v; want a snapshot with 2 errors listed", err, res)
	}
	for _, fe := range res.Errors {
		if !strings.Contains(fe.Path, "locked") {
			t.Errorf("listed error %+v is not one of the locked paths", fe)
		}
	}
}
