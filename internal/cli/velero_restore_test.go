package cli

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
)

// bucketFiles is every file under dir with its content hash.
func bucketFiles(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// rewriteGzip replaces old with new in a gzipped file of the fixture.
func rewriteGzip(t *testing.T, path, old, new string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(data), old) {
		t.Fatalf("%s: %v, or no %q in it", path, err, old)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(strings.ReplaceAll(string(data), old, new)))
	_ = zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// unreachableKubeconfig is a kubeconfig whose cluster does not answer: a command that reaches it
// fails, so one that refuses first proves it refused before touching any cluster.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVeleroRestoreRefusals: what `velero restore` refuses, each in one line, before it reaches
// the cluster, and Velero's bucket unchanged by any of it.
func TestVeleroRestoreRefusals(t *testing.T) {
	url, dir := veleroFixture(t)
	rewriteGzip(t, filepath.Join(dir, "backups", "datamover-sts", "datamover-sts-volumeinfo.json.gz"), `"dataMover":"velero"`, `"dataMover":"acme"`)
	before := bucketFiles(t, dir)
	kubeconfig := unreachableKubeconfig(t)
	wrong := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(wrong, []byte("not Velero's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"partial"}, `error: backup "partial" is PartiallyFailed (1 error; see ` + "`kubectl pvbackup velero describe partial`" + `): pass --allow-partially-failed to restore what it holds`},
		{[]string{"datamover-sts", "--require-all-volumes"}, `error: --require-all-volumes: 1 volumes of Velero backup "datamover-sts" cannot be restored, nothing was created: vl-dm/data-db-0: moved by the third-party data mover "acme"`},
		{[]string{"fs-deploy", "--velero-password-file", wrong, "--mover-location", "s3://velero/lab"}, `error: wrong password for Velero's repository ` + url + ` (kopia/vl-fs/) (tried --velero-password-file ` + wrong + `)`},
		// A dry run checks the password too, though no mover runs (and the movers' location is unset).
		{[]string{"fs-deploy", "--dry-run", "--velero-password-file", wrong}, `error: wrong password for Velero's repository ` + url + ` (kopia/vl-fs/) (tried --velero-password-file ` + wrong + `)`},
		{[]string{"fs-deploy", "--data-only", "--volumes", "vl-fs/data", "--velero-password-file", wrong, "--mover-location", "s3://velero/lab"}, `error: wrong password for Velero's repository ` + url + ` (kopia/vl-fs/)`},
		{[]string{"fs-deploy", "--data-only", "--mover-location", "s3://velero/lab"}, "error: --data-only needs --volumes namespace/pvc[,namespace/pvc] (see `kubectl pvbackup velero describe fs-deploy --from-velero URL`)"},
		{[]string{"fs-deploy", "--data-only", "--volumes", "vl-fs/data", "-l", "app=x", "--mover-location", "s3://velero/lab"}, `error: --data-only restores volume data only (name them with --volumes): -l do not apply`},
		{[]string{"fs-deploy", "--namespace-mapping", "vl-fs:a", "--existing-resource-policy", "all"}, `error: --existing-resource-policy="all": use none or update`},
		{[]string{"Bad_Name"}, `error: backup name "Bad_Name" is not valid for a Velero backup`},
	} {
		args := append([]string{"velero", "restore"}, tc.args...)
		args = append(args, "--from-velero", url, "--kubeconfig", kubeconfig)
		_, errOut, code := run(t, args...)
		if code != ExitFailed || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d\n%s\nwant %q", tc.args, code, errOut, tc.want)
		}
		if strings.Contains(errOut, "127.0.0.1:1") {
			t.Errorf("%v reached the cluster before refusing:\n%s", tc.args, errOut)
		}
	}
	if after := bucketFiles(t, dir); after != before {
		t.Errorf("Velero's bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestVeleroRestorePartial: a claim created empty because Velero's data for it is not in the
// bucket makes the run exit 2; a claim skipped for another reason (it exists) does not.
func TestVeleroRestorePartial(t *testing.T) {
	o := &VeleroRestoreOptions{RestoreOptions: RestoreOptions{Name: "b"}}
	d := &velero.Details{Volumes: []velero.Volume{
		{Namespace: "a", PVC: "csi", Method: velero.MethodCSISnapshot, Reason: "a CSI snapshot"},
		{Namespace: "a", PVC: "ok", Method: velero.MethodFSBackup, Restorable: true, SnapshotID: "k1"},
	}}
	res := &restore.Result{Volumes: []restore.VolumeItem{{Namespace: "a", PVC: "ok", From: "a/ok", Action: restore.Skipped, Reason: "exists"}}}
	if err := o.partial(res, d); err != nil {
		t.Errorf("a restorable claim left alone: %v", err)
	}
	res.Volumes = append(res.Volumes, restore.VolumeItem{Namespace: "x", PVC: "csi", From: "a/csi", Action: restore.Skipped})
	if err := o.partial(res, d); ExitCodeOf(err) != ExitPartial || !strings.Contains(err.Error(), "the data of 1 volume is not in the bucket, its claim was created empty") {
		t.Errorf("a claim created empty: %v (exit %d)", err, ExitCodeOf(err))
	}
}
