package mover

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// events collects what a run printed, and checks every line is a well-formed event.
type events struct{ buf bytes.Buffer }

func (e *events) sink() Sink { return JSONLines(&e.buf) }

func (e *events) parse(t *testing.T) []Event {
	t.Helper()
	var out []Event
	for _, line := range bytes.Split(bytes.TrimSpace(e.buf.Bytes()), []byte("\n")) {
		ev, err := ParseEvent(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func fileSettings(t *testing.T) Settings {
	return Settings{Location: "file://" + filepath.Join(t.TempDir(), "location"), Namespace: "team-a", Password: "s3cret-pw", CacheDir: t.TempDir()}
}

func TestBackupRestoreFile(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, treeSpec{smallFiles: 300, sparse: 64 << 20})
	want := describeTree(t, src)
	s := fileSettings(t)

	var ev events
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b1"}, ev.sink())
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !res.OK || res.SnapshotID == "" || res.ParentID != "" || res.Files != 308 || res.Bytes < 64<<20 {
		t.Fatalf("first backup result %+v; want ok, a snapshot, no parent, 308 files", res)
	}
	evs := ev.parse(t)
	if evs[0].Event != EventStart || evs[len(evs)-1].Event != EventResult || evs[len(evs)-1].Result.SnapshotID != res.SnapshotID {
		t.Errorf("events start with %q and end with %q; want start ... result", evs[0].Event, evs[len(evs)-1].Event)
	}
	var progress []Event
	for _, e := range evs {
		if e.Event == EventProgress {
			progress = append(progress, e)
		}
	}
	// The last one comes when the work ends, however soon after the tick before it.
	var last time.Time
	for _, e := range progress[:max(len(progress)-1, 0)] {
		if !last.IsZero() && e.Time.Sub(last) < ProgressInterval-50*time.Millisecond {
			t.Errorf("progress events %v apart; want at most two a second", e.Time.Sub(last))
		}
		last = e.Time
	}
	if strings.Contains(ev.buf.String(), s.Password) {
		t.Error("the password appears in the mover's output")
	}

	// Unchanged data: the previous snapshot is the parent, every file is found unchanged.
	res2, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b2"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if res2.ParentID != res.SnapshotID || res2.CachedFiles < res2.Files { // symlinks count as cached entries too
		t.Errorf("second backup parent %s, %d of %d files cached; want parent %s and all cached", res2.ParentID, res2.CachedFiles, res2.Files, res.SnapshotID)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	rres, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res2.SnapshotID, Target: dst, Sparse: true}, func(Event) {})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !rres.OK || rres.Files != 308 || rres.Namespace != "team-a" || rres.PVC != "data" || rres.Backup != "b2" {
		t.Errorf("restore result %+v", rres)
	}
	compareTrees(t, want, describeTree(t, dst))
}

func TestPasswords(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, treeSpec{smallFiles: 3})
	s := fileSettings(t)
	if _, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(strings.TrimPrefix(s.Location, "file://"), "kopia", "team-a")
	before, _ := os.ReadFile(filepath.Join(repoDir, "kopia.repository"))

	wrong := s
	wrong.Password = "not-the-password"
	res, err := RunBackup(ctx, wrong, BackupConfig{Source: src, PVC: "data"}, func(Event) {})
	if !errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(res.Error, "wrong repository password for "+s.Location) {
		t.Fatalf("backup with a wrong password: %v (result error %q); want \"wrong repository password for %s\"", err, res.Error, s.Location)
	}
	after, _ := os.ReadFile(filepath.Join(repoDir, "kopia.repository"))
	if !bytes.Equal(before, after) || len(before) == 0 {
		t.Error("a wrong password changed the repository's format blob")
	}
	if _, err := RunRestore(ctx, wrong, RestoreConfig{SnapshotID: "x", Target: t.TempDir()}, func(Event) {}); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("restore with a wrong password: %v", err)
	}
	none := s
	none.Password = ""
	if _, err := RunBackup(ctx, none, BackupConfig{Source: src, PVC: "data"}, func(Event) {}); err == nil || !strings.Contains(err.Error(), "no password") {
		t.Errorf("backup without a password: %v; want a missing-password error", err)
	}
}

func TestRestoreErrors(t *testing.T) {
	ctx := context.Background()
	s := fileSettings(t)
	_, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: "abc", Target: t.TempDir()}, func(Event) {})
	if !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("restore from an empty location: %v; want ErrNoRepository", err)
	}
	src := t.TempDir()
	makeTree(t, src, treeSpec{smallFiles: 1})
	if _, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	res, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: "0123456789abcdef0123456789abcdef", Target: t.TempDir()}, func(Event) {})
	if err == nil || !strings.Contains(res.Error, "0123456789abcdef0123456789abcdef") {
		t.Errorf("restore of a missing snapshot: %v; want an error naming it", err)
	}
	if _, err := RunBackup(ctx, s, BackupConfig{Source: filepath.Join(src, "nope"), PVC: "data"}, func(Event) {}); err == nil {
		t.Error("backup of a missing directory succeeded")
	}
}

func TestMarshalResultFitsTerminationMessage(t *testing.T) {
	r := &Result{Op: OpBackup, Error: strings.Repeat("x", 5000), ErrorCount: 1000}
	for i := range 100 {
		r.Errors = append(r.Errors, FileError{Path: strings.Repeat("p", 100) + string(rune('a'+i%26)), Message: "permission denied"})
	}
	b := MarshalResult(r)
	if len(b) > MaxResultBytes || len(b) == 0 {
		t.Fatalf("result is %d bytes; want 1..%d", len(b), MaxResultBytes)
	}
	if !bytes.Contains(b, []byte(`"errorCount":1000`)) {
		t.Errorf("shortened result lost the error count: %s", b)
	}
}

// A backup's compression policy is the whole of it: a repository policy's sizes or lists (the
// kopia CLI's, say) do not leak into it, and a bad name is refused before anything is read.
func TestBackupPolicyCompression(t *testing.T) {
	p, err := backupPolicy(BackupConfig{Compression: "zstd-fastest"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.CompressionPolicy
	if c.CompressorName != "zstd-fastest" || c.MinSize != 1 || c.MaxSize != math.MaxInt64 || !c.NoParentNeverCompress || !c.NoParentOnlyCompress {
		t.Errorf("zstd-fastest policy = %+v", c)
	}
	p, err = backupPolicy(BackupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.CompressionPolicy; c.CompressorName != repo.AutoCompressor || c.MinSize != repo.AutoMinSize || len(c.NeverCompress) == 0 {
		t.Errorf("default policy = %+v, want auto", c)
	}
	if _, err := backupPolicy(BackupConfig{Compression: "brotli"}); err == nil {
		t.Error("an unknown compressor was accepted")
	}
	cfg := BackupConfig{Source: t.TempDir(), Namespace: "ns", PVC: "p", Compression: "brotli"}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "compression") {
		t.Errorf("validate() = %v, want a compression error", err)
	}
}
