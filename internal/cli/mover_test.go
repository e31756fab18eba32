package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
)

func runMover(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCmd(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), err
}

func readResult(t *testing.T, path string) mover.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r mover.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("result file %s: %v: %s", path, err, b)
	}
	return r
}

// The mover takes every setting from the environment (how the plugin's Jobs pass them) and writes
// its result file; flags work the same way.
func TestMoverBackupRestoreFromEnv(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(dir, "termination-log")
	t.Setenv(password.EnvPassword, "env-password-123")
	t.Setenv("PVBACKUP_LOCATION", "file://"+filepath.Join(dir, "loc"))
	t.Setenv("PVBACKUP_SOURCE_NAMESPACE", "shop")
	t.Setenv("PVBACKUP_PVC", "db")
	t.Setenv("PVBACKUP_BACKUP", "nightly")
	t.Setenv("PVBACKUP_SOURCE", src)
	t.Setenv("PVBACKUP_RESULT", result)
	t.Setenv("PVBACKUP_CACHE_DIR", dir)

	out, err := runMover(t, "mover", "backup")
	if err != nil {
		t.Fatalf("mover backup: %v\n%s", err, out)
	}
	if strings.Contains(out, "env-password-123") {
		t.Error("stdout shows the password")
	}
	res := readResult(t, result)
	if !res.OK || res.SnapshotID == "" || res.Namespace != "shop" || res.PVC != "db" || res.Backup != "nightly" || res.Files != 1 {
		t.Fatalf("result %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last, err := mover.ParseEvent([]byte(lines[len(lines)-1]))
	if err != nil || last.Event != mover.EventResult || last.Result.SnapshotID != res.SnapshotID {
		t.Errorf("last stdout line %q; want the result event", lines[len(lines)-1])
	}

	target := filepath.Join(dir, "dst")
	out, err = runMover(t, "mover", "restore", "--snapshot", res.SnapshotID, "--target", target, "--result", filepath.Join(dir, "r2"))
	if err != nil {
		t.Fatalf("mover restore: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(target, "sub", "a.txt"))
	if err != nil || string(b) != "hello" {
		t.Errorf("restored a.txt = %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(target, "sub", "empty")); err != nil || !st.IsDir() {
		t.Errorf("empty directory not restored: %v", err)
	}
}

func TestMoverSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	result := filepath.Join(dir, "termination-log")
	t.Setenv(password.EnvPassword, "")
	_, err := runMover(t, "mover", "backup", "--location", "file://"+dir, "--source-namespace", "shop", "--pvc", "db", "--source", dir, "--result", result)
	if err == nil || err != password.ErrMissing {
		t.Fatalf("no password: %v; want %v", err, password.ErrMissing)
	}
	if r := readResult(t, result); r.OK || !strings.Contains(r.Error, "no repository password") {
		t.Errorf("result of a run without password: %+v", r)
	}
	t.Setenv(password.EnvPassword, "x")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mover", "backup", "--source-namespace", "shop", "--result", "-"}, "no backup location"},
		{[]string{"mover", "backup", "--location", "file://" + dir, "--result", "-"}, "no source namespace"},
		{[]string{"mover", "backup", "--location", "ftp://x", "--source-namespace", "shop", "--result", "-"}, "unsupported scheme"},
		{[]string{"mover", "backup", "--location", "file://" + dir, "--source-namespace", "shop", "--on-error", "maybe", "--result", "-"}, "use fail or skip"},
		{[]string{"mover", "restore", "--location", "file://" + dir, "--source-namespace", "shop", "--result", "-"}, "--snapshot and --target"},
	} {
		if _, err := runMover(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want an error containing %q", tc.args, err, tc.want)
		}
	}
}
