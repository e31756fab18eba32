package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// ls, cat and cp need the location and the password only: no kubeconfig at all.
func TestLsCatCpWithoutCluster(t *testing.T) {
	dir := t.TempDir()
	loc := "file://" + filepath.Join(dir, "loc")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "conf", "app.conf"), []byte("port=80\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("conf/app.conf", filepath.Join(src, "current")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The location's key, as create makes it: the repository opens with the namespace's derived key.
	kr, err := keyring.Create(ctx, l, "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	res, err := mover.RunBackup(ctx, mover.Settings{Location: loc, Namespace: "shop", Password: repoPassword(t, kr, "shop"), CacheDir: dir}, mover.BackupConfig{Source: src, PVC: "data"}, func(mover.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed,
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, Files: 1, Bytes: 8, KopiaSnapshot: res.SnapshotID}}}
	if err := catalog.New(l).WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-such-kubeconfig"))
	t.Setenv(store.EnvLocation, loc)
	t.Setenv(password.EnvPassword, "pw-123456")
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := NewRootCmd(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "b1"}, "shop/data  fs    Completed  1      8 B   Kopia snapshot " + res.SnapshotID},
		{[]string{"ls", "b1", "shop/data"}, "conf\ncurrent\n"},
		{[]string{"ls", "b1", "shop/data", "-R"}, "/conf\n/conf/app.conf\n/current\n"},
		{[]string{"ls", "b1", "shop/data:/conf", "-l"}, "-rw-r----- "},
		{[]string{"ls", "b1", "shop/data", "-l"}, "current -> conf/app.conf"},
		{[]string{"cat", "b1", "shop/data:/conf/app.conf"}, "port=80\n"},
	} {
		out, err := run(tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: %v\n%s\nwant %q", tc.args, err, out, tc.want)
		}
	}
	dest := filepath.Join(dir, "dest")
	if out, err := run("cp", "b1", "shop/data", dest); err != nil || !strings.Contains(out, "Copied 1 file") {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "current")); err != nil || string(b) != "port=80\n" {
		t.Errorf("copied tree: %q, %v", b, err)
	}
	if _, err := run("cp", "b1", "shop/data", dest, "--include", "[x-"); err == nil {
		t.Error("a bad --include was accepted")
	}
}
