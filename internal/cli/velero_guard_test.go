package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateRefusesVeleroPrefix: create --to a prefix that holds Velero's data is refused before
// anything is written there (no keys/, no claim), and before the cluster is reached.
func TestCreateRefusesVeleroPrefix(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	t.Setenv("PVBACKUP_LOCATION", "")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "backups", "nightly"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backups", "nightly", "velero-backup.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "create", "b", "--to", "file://"+dir, "--volumes", "none", "--kubeconfig", filepath.Join(dir, "missing"))
	if code != ExitFailed || !strings.Contains(errOut, "this prefix belongs to Velero") || !strings.Contains(errOut, "backups/nightly/velero-backup.json") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("create wrote into Velero's prefix: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "backups", "b")); err == nil {
		t.Error("create claimed the name in Velero's prefix")
	}
}
