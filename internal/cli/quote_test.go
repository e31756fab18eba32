package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Names a tenant writes (files in a volume) or a bucket writer writes (backup directories,
// backup.json, the log) reach the operator's terminal quoted: no escape sequence runs, no
// newline makes a row of its own.
func TestNamesFromTheBucketAreQuoted(t *testing.T) {
	const (
		erase = "\x1b[2K"    // erase the line
		title = "\x1b]0;x\a" // set the terminal's title
		clear = "\x1b[2J"    // clear the screen
	)
	dir := t.TempDir()
	loc := "file://" + filepath.Join(dir, "loc")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ev" + erase + "il", "ok\n-rw-r--r-- 0 0 1 2024-01-01 00:00:00 fake"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("target"+title, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	kr, err := keyring.Create(ctx, l, "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	res, err := mover.RunBackup(ctx, mover.Settings{Location: loc, Namespace: "shop", Password: repoPassword(t, kr, "shop"), CacheDir: dir}, mover.BackupConfig{Source: src, PVC: "data", Backup: "b1"}, func(mover.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(l)
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed, StartTime: time.Now().Add(-time.Hour),
		Namespaces: []string{"shop" + clear}, Labels: map[string]string{"team": "a" + erase},
		Cluster: catalog.Cluster{Server: "https://h" + title},
		Errors:  []string{"failed" + clear}, Warnings: []catalog.Warning{{Message: "careful" + erase}},
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID, Reason: "why" + erase}}}
	if err := cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	log := catalog.NewLog()
	log.Add(catalog.LogEntry{Time: time.Now(), Level: "info", Resource: "v1/configmaps", Namespace: "shop", Name: "cm" + erase, Message: "done\nerror: fake line"})
	if err := cat.WriteLog(ctx, "b1", log); err != nil {
		t.Fatal(err)
	}
	// A backup directory no create makes, whose name is an escape sequence.
	if err := l.Bucket().WriteAll(ctx, "backups/x"+clear+"/claim.json", []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-such-kubeconfig"))
	t.Setenv(store.EnvLocation, loc)
	t.Setenv(password.EnvPassword, "pw-123456")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"ls", "b1", "shop/data", "-l"}, []string{`"ev\x1b[2Kil"`, `"ok\n-rw-r--r-- 0 0 1 2024-01-01 00:00:00 fake"`, `link -> "target\x1b]0;x\a"`}},
		{[]string{"ls", "b1", "shop/data", "-R"}, []string{`"/ev\x1b[2Kil"`}},
		{[]string{"list"}, []string{`"x\x1b[2J"`, `"shop\x1b[2J"`, `"team=a\x1b[2K"`}},
		{[]string{"describe", "b1"}, []string{`"shop\x1b[2J"`, `"https://h\x1b]0;x\a"`, `"failed\x1b[2J"`, `"careful\x1b[2K"`, `"why\x1b[2K"`}},
		{[]string{"logs", "b1"}, []string{`"shop/cm\x1b[2K"`, `"done\nerror: fake line"`}},
	} {
		var out, errOut bytes.Buffer
		cmd := NewRootCmd(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, errOut.String())
			continue
		}
		shown := out.String() + errOut.String()
		if strings.ContainsAny(shown, "\x1b\a\r") {
			t.Errorf("%v printed a control character:\n%q", tc.args, shown)
		}
		for _, w := range tc.want {
			if !strings.Contains(shown, w) {
				t.Errorf("%v lacks %s:\n%s", tc.args, w, shown)
			}
		}
		if strings.Contains(shown, "\nerror: fake line") || strings.Contains(shown, "\n-rw-r--r-- 0 0 1 2024-01-01 00:00:00 fake") {
			t.Errorf("%v printed a name's newline as a line of its own:\n%s", tc.args, shown)
		}
	}
}
