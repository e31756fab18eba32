package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// keys/location.age is one small object: deleting or emptying it made every backup
// unrecoverable, even with the password. The copy kept with each backup opens the location (and
// says so), `repo export-key`/`import-key` keep and restore an offline copy, and a location that
// lost both says so instead of blaming a development build.
func TestLostKeyFile(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "")
	dir := t.TempDir()
	url := "file://" + filepath.Join(dir, "loc")
	pw := filepath.Join(dir, "pw")
	_ = os.WriteFile(pw, []byte("the password\n"), 0o600)
	loc, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	kr, err := keyring.Create(ctx, loc, "the password")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	_ = os.MkdirAll(src, 0o755)
	_ = os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	res, err := mover.RunBackup(ctx, mover.Settings{Location: url, Namespace: "shop", Password: repoPassword(t, kr, "shop"), CacheDir: t.TempDir()}, mover.BackupConfig{Source: src, PVC: "data", Backup: "b1"}, func(mover.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	// What create writes: the key's copy after the claim, the manifest last.
	if err := kr.SaveCopy(ctx, loc, "b1"); err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed, KeyScheme: keyring.Scheme,
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID}}}
	if err := catalog.New(loc).WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(dir, "export.age")
	if out, errOut, code := run(t, "repo", "export-key", export, "--from", url, "--password-file", pw); code != 0 || !strings.Contains(out, "Exported the key of") {
		t.Fatalf("export-key: exit %d\n%s%s", code, out, errOut)
	}
	ls := func() (string, string, int) {
		return run(t, "ls", "b1", "shop/data", "--from", url, "--password-file", pw)
	}
	keyPath := filepath.Join(dir, "loc", "keys", "location.age")

	// Emptied, then deleted: the copy opens the location, and it is said.
	for _, lose := range []func() error{func() error { return os.WriteFile(keyPath, nil, 0o600) }, func() error { return os.Remove(keyPath) }} {
		if err := lose(); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := ls()
		if code != 0 || !strings.Contains(out, "f") || !strings.Contains(errOut, "the location was opened with the copy kept in backups/b1/location.age") {
			t.Fatalf("ls with the key file lost: exit %d\n%s%s", code, out, errOut)
		}
	}
	// Without the copy either: the message says what happened and what to do.
	_ = os.Remove(filepath.Join(dir, "loc", "backups", "b1", "location.age"))
	_, errOut, code := ls()
	if code != 1 || !strings.Contains(errOut, "keys/location.age is gone and no backup holds a copy of it: import your export") || strings.Contains(errOut, "development build") {
		t.Fatalf("ls without key file and copy: exit %d\n%s", code, errOut)
	}
	// The export puts it back.
	if out, errOut, code := run(t, "repo", "import-key", export, "--from", url, "--password-file", pw); code != 0 || !strings.Contains(out, "Wrote keys/location.age") {
		t.Fatalf("import-key: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := ls(); code != 0 || !strings.Contains(out, "f") || errOut != "" {
		t.Fatalf("ls after import-key: exit %d\n%s%s", code, out, errOut)
	}
	// An export of another location is refused.
	other, err := store.Open(ctx, "file://"+filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	okr, err := keyring.Create(ctx, other, "the password")
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.age")
	_ = os.WriteFile(foreign, okr.Wrapped(), 0o600)
	if _, errOut, code := run(t, "repo", "import-key", foreign, "--from", url, "--password-file", pw); code != 1 || !strings.Contains(errOut, "the export holds another key") {
		t.Fatalf("import-key of another location's key: exit %d\n%s", code, errOut)
	}
}

// After `repo change-password`, the copies are wrapped by the new password too: with the key
// file gone, the old password opens nothing.
func TestChangePasswordRewrapsCopies(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "")
	l := newPWLocation(t)
	loc := l.open(t)
	for _, name := range []string{"b1", "b2"} {
		if err := l.key.SaveCopy(ctx, loc, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := run(t, "repo", "change-password", "--from", l.url, "--password-file", l.old, "--new-password-file", l.new); code != 0 {
		t.Fatalf("change-password: %s", errOut)
	}
	if err := loc.Bucket().Delete(ctx, keyring.KeyFile); err != nil {
		t.Fatal(err)
	}
	if got := l.opensWith(t, "old password", "new password"); strings.Join(got, ",") != "new password" {
		t.Fatalf("with the key file gone, the location opens with %v; want the new password only", got)
	}
}

// repoPassword and archiveKey derive k's secrets, failing the test on an error.
func repoPassword(t testing.TB, k *keyring.Keyring, ns string) string {
	t.Helper()
	pw, err := k.RepoPassword(ns)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

func archiveKey(t testing.TB, k *keyring.Keyring) string {
	t.Helper()
	key, err := k.ArchiveKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
