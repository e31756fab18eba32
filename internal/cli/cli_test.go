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
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// run executes the command line in process and returns what the user sees.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRootCmd(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCodeOf(err)
}

func TestHelp(t *testing.T) {
	t.Setenv("HOME", "/home/user") // kubectl's --cache-dir default shows it
	out, _, _ := run(t, "create", "--help")
	if !strings.Contains(out, "kubectl pvbackup create shop-1 --to") || !strings.Contains(out, "--include-cluster-resources") || !strings.Contains(out, "--kubeconfig") {
		t.Fatalf("create help:\n%s", out)
	}
}

// TestBadInput checks that bad input fails at once, before any cluster or bucket is reached,
// with a one-line error that names the thing.
func TestBadInput(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	t.Setenv("PVBACKUP_LOCATION", "")
	nowhere := []string{"--kubeconfig", filepath.Join(t.TempDir(), "missing")}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"create", "Bad_Name", "--to", "file:///tmp/x"}, want: `backup name "Bad_Name" is not valid`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "-o", "table"}, want: `--output="table": use json or yaml`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--volume-group-by", "bad key"}, want: `--volume-group-by "bad key" is not a label key`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--volume-group-by", "pvbackup.io/group-run"}, want: `that label is the tool's own`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--volume-groups", "namespace"}, want: `--volume-groups "namespace": use labels or auto`},
		{args: []string{"create", "b", "--to", "file:///tmp/x"}, env: map[string]string{"PVBACKUP_PASSWORD": ""}, want: "no repository password: set PVBACKUP_PASSWORD or pass --password-file FILE (there is no default password)"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--password-file", "/nonexistent/pw"}, want: "read password file: stat /nonexistent/pw: no such file or directory"},
		{args: []string{"create", "b"}, want: "no backup location: pass --to/--from URL or set PVBACKUP_LOCATION"},
		{args: []string{"create", "b", "--to", "ftp://h/x"}, want: `unsupported scheme "ftp"`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--include-cluster-resources", "maybe"}, want: `--include-cluster-resources="maybe": use auto, true or false`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--include-namespaces", "[x"}, want: `namespace pattern "[x"`},
		{args: []string{"restore", "b", "--from", "file:///tmp/x", "--namespace-mapping", "a"}, want: `--namespace-mapping "a": use old:new`},
		{args: []string{"restore", "b", "--from", "file:///tmp/x", "--namespace-mapping", "a:B_"}, want: `"B_" is not a valid namespace name`},
		{args: []string{"restore", "b", "--from", "file:///tmp/x", "--namespace-mapping", "a:c,b:c"}, want: `maps both "a" and "b" to "c"`},
		{args: []string{"restore", "b", "--from", "file:///tmp/x", "--existing-resource-policy", "merge"}, want: `--existing-resource-policy="merge": use none or update`},
		{args: []string{"describe", "b", "--from", "file://relative"}, want: "file:// needs an absolute path"},
		{args: []string{"copy", "b", "--from", "file:///tmp/x", "--to", "file:///tmp/y", "--upload-limit", "fast"}, want: `--upload-limit: rate "fast": not a number of bytes per second`},
		{args: []string{"copy", "b", "--from", "file:///tmp/x", "--to", "file:///tmp/y", "--download-limit", "5 parsecs"}, want: `--download-limit: rate "5 parsecs": unknown unit " parsecs"`},
		{args: []string{"create"}, want: "name the backup: create NAME, or create --generate-name PREFIX for PREFIX-YYYYMMDD-HHMMSS"},
		{args: []string{"create", "a", "b"}, want: "accepts at most 1 arg(s), received 2"},
		{args: []string{"create", "b", "--generate-name", "nightly", "--to", "file:///tmp/x"}, want: "give a backup NAME or --generate-name nightly, not both"},
		{args: []string{"create", "--generate-name", "Nightly", "--to", "file:///tmp/x"}, want: `--generate-name "Nightly" is not valid`},
		{args: []string{"create", "--generate-name", strings.Repeat("n", 46), "--to", "file:///tmp/x"}, want: "at most 45 characters (the name adds -YYYYMMDD-HHMMSS)"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--volumes", "fs"}, want: "location file:///tmp/x is a directory on this machine, which mover pods cannot reach"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--volumes", "fast"}, want: `--volumes: volume mode "fast": use auto, snapshot-move, fs, snapshot or none`},
		{args: []string{"create", "b", "--to", "s3://b/p", "--mover-pull-policy", "Sometimes"}, want: `--mover-pull-policy="Sometimes": use IfNotPresent, Always or Never`},
		{args: []string{"create", "b", "--to", "s3://b/p", "--mover-memory-limit", "lots"}, want: `--mover-memory-limit="lots"`},
		{args: []string{"create", "b", "--to", "s3://b/p", "--parallel", "0"}, want: "--parallel 0: must be 1 or more"},
		{args: []string{"create", "b", "--to", "s3://b/p", "--upload-limit", "fast"}, want: `--upload-limit: rate "fast": not a number of bytes per second (e.g. 20MiB/s, 500KB/s)`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--download-limit", "20Mbit/s"}, want: `--download-limit: rate "20Mbit/s": unknown unit "Mbit" (use B, KB, MB, GB, KiB, MiB or GiB, optionally with /s)`},
		{args: []string{"cp", "b", "ns/pvc", "/tmp/out", "--from", "s3://b/p", "--download-limit", "10B/s"}, want: `--download-limit: rate "10B/s": below the least limit of 1KiB/s`},
		{args: []string{"create", "b", "--to", "s3://b/p", "--compression", "brotli"}, want: `--compression: unknown compression "brotli" (use none, auto, deflate-best-compression`},
		{args: []string{"create", "b", "--to", "s3://b/p", "--hook-selector", "a b"}, want: `--hook-selector "a b"`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--storage-class-mapping", "gp2"}, want: `--storage-class-mapping "gp2": use old:new`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--storage-class-mapping", "gp2:GP3"}, want: `"GP3" is not a valid StorageClass name`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--running-jobs", "rerun"}, want: `--running-jobs="rerun": use suspend, restore or skip`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--data-only", "--volumes", "shop/data", "--include-namespaces", "shop", "--existing-resource-policy", "update"},
			want: `--data-only restores volume data only (name them with --volumes): --include-namespaces, --existing-resource-policy do not apply`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--in-place", "--volumes", "shop/data", "--running-jobs", "skip"},
			want: `--running-jobs do not apply`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--resource-modifiers", "/nonexistent/m.yaml"}, want: `--resource-modifiers: open /nonexistent/m.yaml: no such file or directory`},
		{args: []string{"restore", "b", "--from", "s3://b/p", "--resource-modifiers", golden.Path("restore/bad-modifiers.yaml")}, want: `bad-modifiers.yaml: resourceModifierRules[1]: patches[0]: operation "update": use add, remove, replace, move, copy or test`},
		{args: []string{"cleanup", "--backup", "Bad_Name"}, want: `backup name "Bad_Name" is not valid`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--labels", "env=prod,Bad Key=x"}, want: `--labels: key "Bad Key"`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--labels", "env=not ok"}, want: `--labels: value "not ok" of env`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--labels", "env"}, want: `--labels "env": write KEY=VALUE`},
		{args: []string{"list", "--from", "file:///tmp/x", "-l", "a b"}, want: `--selector "a b"`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "-l", "a=b", "--or-selector", "c=d or e=f"}, want: "--selector and --or-selector cannot be used together"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--or-selector", "a=b or c d"}, want: `--or-selector "a=b or c d": "c d"`},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--include-resources", "pods", "--exclude-cluster-scoped-resources", "*"}, want: "--include-resources (old-style filters) cannot be used with --include/exclude-cluster-scoped-resources"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--include-cluster-resources=true", "--include-namespace-scoped-resources", "pods"}, want: "--include-cluster-resources (old-style filters) cannot be used with"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--exclude-resources", "pods", "--resource-policies", "../policy/testdata/velero-include-exclude.yaml"}, want: "--exclude-resources (old-style filters) cannot be used with the includeExcludePolicy of ../policy/testdata/velero-include-exclude.yaml"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--resource-policies", "/nonexistent/p.yaml"}, want: "--resource-policies: open /nonexistent/p.yaml"},
		{args: []string{"create", "b", "--to", "file:///tmp/x", "--resource-policies", "testdata/bad-policy.yaml"}, want: `--resource-policies testdata/bad-policy.yaml: volumePolicies rule 2: action "backup": use skip, fs-backup, snapshot or snapshot-move`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, errOut, code := run(t, append(tc.args, nowhere...)...)
			if code != ExitFailed || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant %q", code, errOut, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 0 {
				t.Fatalf("error is %d lines, want one:\n%s", n+1, errOut)
			}
		})
	}
}

// TestCatalogCommands runs list, describe, logs and delete on a file:// location holding a
// complete backup and an interrupted one; they need neither cluster nor password.
func TestCatalogCommands(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	dir := t.TempDir()
	loc := "file://" + dir
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(l)
	start := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	m := &catalog.Manifest{
		FormatVersion: 1, Name: "shop-1", ToolVersion: "v0.1.0", Status: catalog.PartiallyFailed,
		Labels:    map[string]string{"env": "prod", "team": "shop"},
		Cluster:   catalog.Cluster{Server: "https://10.0.0.1:6443", Context: "prod", ServerVersion: "v1.34.4"},
		Selection: catalog.Selection{IncludeNamespaces: []string{"shop"}, IncludeClusterResources: "auto"},
		StartTime: start, CompletionTime: start.Add(2 * time.Second),
		Namespaces: []string{"shop"}, Items: 4,
		Resources: []catalog.Count{{Resource: "v1/configmaps", Namespace: "shop", Count: 3}, {Resource: "v1/namespaces", Count: 1}, {Resource: "v1/secrets", Count: 0}, {Resource: "v1/services", Count: 0}},
		Excluded:  []catalog.Excluded{{Resource: "configmaps", Namespace: "shop", Name: "scratch", Label: "velero.io/exclude-from-backup=true"}, {Resource: "namespaces", Name: "sandbox", Label: "pvbackup.io/exclude-from-backup=true"}},
		Errors:    []string{"list metrics.k8s.io/v1beta1 pods in namespace shop: the server is currently unable to handle the request"},
		Archive:   catalog.ArchiveRef{File: catalog.ResourcesFile, Size: 2048, Encrypted: "age-scrypt"},
		TTL:       "720h0m0s", ExpiresAt: start.Add(720 * time.Hour),
		// list shows the volume data beside the archive: 2.3 MiB, not the archive's 3.5 KiB alone.
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k1", Files: 12, Bytes: 2411724, UploadedBytes: 1048576}},
	}
	w, _ := cat.NewWriter(ctx, "shop-1", catalog.ResourcesFile, "")
	_, _ = w.Write(make([]byte, 2048))
	_ = w.Close()
	log := catalog.NewLog()
	log.Add(catalog.LogEntry{Time: start, Level: "info", Resource: "configmaps", Message: "backed up 3 objects"})
	log.Add(catalog.LogEntry{Time: start.Add(time.Second), Level: "warning", Resource: "pods.metrics.k8s.io", Namespace: "shop", Message: "list failed"})
	if err := cat.WriteLog(ctx, "shop-1", log); err != nil {
		t.Fatal(err)
	}
	if err := cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	// An interrupted backup: an archive, no manifest, two hours old.
	w, _ = cat.NewWriter(ctx, "broken", catalog.ResourcesFile, "")
	_, _ = w.Write([]byte("partial"))
	_ = w.Close()
	old := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "backups", "broken", catalog.ResourcesFile), old, old)

	for _, tc := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"cli/list.golden", []string{"list", "--from", loc}, 0},
		{"cli/list-selector.golden", []string{"list", "--from", loc, "-l", "env=prod,team in (shop,web)"}, 0},
		{"cli/list-selector-none.golden", []string{"list", "--from", loc, "-l", "env!=prod"}, 0},
		{"cli/describe.golden", []string{"describe", "shop-1", "--from", loc}, 0},
		{"cli/logs.golden", []string{"logs", "shop-1", "--from", loc}, 0},
		{"cli/describe-incomplete.golden", []string{"describe", "broken", "--from", loc}, ExitFailed},
		{"cli/prune-dry-run.golden", []string{"prune", "--from", loc, "--keep-last", "1", "--incomplete-after", "1h", "--dry-run"}, 0},
		{"cli/delete.golden", []string{"delete", "broken", "--from", loc}, 0},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			got := strings.NewReplacer(dir, "DIR", start.Format(time.RFC3339), "START",
				start.Add(time.Second).Format(time.RFC3339), "START+1s", start.Add(2*time.Second).Format(time.RFC3339), "START+2s", start.Add(720*time.Hour).Format(time.RFC3339), "START+720h").Replace(out + errOut)
			golden.Assert(t, tc.golden, []byte(got))
		})
	}
	out, _, _ := run(t, "list", "--from", loc, "-o", "json")
	if !strings.Contains(out, `"name": "shop-1"`) || strings.Contains(out, `"broken"`) {
		t.Fatalf("list -o json after delete:\n%s", out)
	}
}

// TestPrune removes an expired backup and keeps the others, and refuses to run while another
// prune holds the location's lease.
func TestPrune(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	dir := t.TempDir()
	loc := "file://" + dir
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cat := catalog.New(l)
	now := time.Now().UTC().Truncate(time.Second)
	for _, m := range []*catalog.Manifest{
		{FormatVersion: 1, Name: "old", Status: catalog.Completed, Namespaces: []string{"shop"}, StartTime: now.Add(-2 * time.Hour), TTL: "1h0m0s", ExpiresAt: now.Add(-time.Hour)},
		{FormatVersion: 1, Name: "new", Status: catalog.Completed, Namespaces: []string{"shop"}, StartTime: now.Add(-time.Hour), TTL: "24h0m0s", ExpiresAt: now.Add(23 * time.Hour)},
	} {
		if err := cat.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	held, err := lease.Acquire(ctx, l, "repo maintain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "prune", "--from", loc)
	if code != ExitFailed || !strings.Contains(errOut, "another maintenance run holds the location: "+held.Record().Owner+" is running repo maintain") {
		t.Fatalf("prune while the lease is held: exit %d\n%s", code, errOut)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "prune", "--from", loc, "-o", "json")
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{`"name": "old"`, `"action": "remove"`, `"ttl 1h0m0s expired at`, `"name": "new"`, `"action": "keep"`} {
		if !strings.Contains(out, want) {
			t.Errorf("prune -o json lacks %s:\n%s", want, out)
		}
	}
	entries, err := cat.List(ctx)
	if err != nil || len(entries) != 1 || entries[0].Name != "new" {
		t.Fatalf("after prune: %+v (%v); want only new", entries, err)
	}
}

// TestDeleteRefuses checks the deletes that would lose data or touch another backup's.
func TestDeleteRefuses(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	dir := t.TempDir()
	loc := "file://" + dir
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cat := catalog.New(l)
	withVolumes := &catalog.Manifest{FormatVersion: 1, Name: "shop-1", Status: catalog.Completed,
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", KopiaSnapshot: "k0123", Status: catalog.VolumeCompleted}}}
	if err := cat.WriteManifest(ctx, withVolumes); err != nil {
		t.Fatal(err)
	}
	// A copy of shop-1's directory under another name.
	b, _ := os.ReadFile(filepath.Join(dir, "backups", "shop-1", catalog.ManifestFile))
	_ = os.MkdirAll(filepath.Join(dir, "backups", "copy"), 0o700)
	_ = os.WriteFile(filepath.Join(dir, "backups", "copy", catalog.ManifestFile), b, 0o600)
	// A backup being written.
	cl := catalog.NewClaim(time.Now(), "test")
	cl.Host = "laptop-of-bob"
	if err := cat.Claim(ctx, "running", cl); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(dir, "backups", "newer"), 0o700)
	_ = os.WriteFile(filepath.Join(dir, "backups", "newer", catalog.ManifestFile), []byte(`{"formatVersion": 99}`), 0o600)
	pwFile := filepath.Join(t.TempDir(), "pw")
	_ = os.WriteFile(pwFile, []byte("pw\n"), 0o600)

	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"delete", "", "--from", loc}, `backup name "" is not valid`, ExitFailed},
		{[]string{"restore", "", "--from", loc, "--password-file", pwFile}, `backup name "" is not valid`, ExitFailed},
		{[]string{"restore", "../x", "--from", loc, "--password-file", pwFile}, `backup name "../x" is not valid`, ExitFailed},
		{[]string{"delete", "shop-1", "--from", loc}, `backup "shop-1" was not deleted: remove backup "shop-1": the Kopia snapshots of namespace shop were kept: no repository password`, ExitFailed},
		{[]string{"delete", "copy", "--from", loc}, `its backup.json names backup "shop-1": the directory is a copy or was tampered with`, ExitFailed},
		{[]string{"delete", "running", "--from", loc}, `it is being written by a run on laptop-of-bob (pid `, ExitFailed},
		{[]string{"delete", "newer", "--from", loc}, `has format version 99`, ExitFailed},
		{[]string{"delete", "copy", "--from", loc, "--force"}, `only this directory's files were deleted, not the volume data it points to`, 0},
		{[]string{"delete", "shop-1", "--from", loc, "--force"}, "warning: volume data left in the location (--force): the Kopia snapshots of namespace shop were kept", 0},
		{[]string{"delete", "running", "--from", loc, "--force"}, `Deleted backup "running" (1 file)`, 0},
		// Nothing to leave behind: no advice to force it.
		{[]string{"delete", "nonexist", "--from", loc}, `backup "nonexist" not found in ` + loc + " (see `kubectl pvbackup list`)", ExitFailed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d, want %d; output:\n%s%s\nwant %q", code, tc.code, out, errOut, tc.want)
			}
			if strings.Contains(out+errOut, "prune") {
				t.Errorf("delete mentions a prune command:\n%s%s", out, errOut)
			}
			if tc.args[1] == "nonexist" && strings.Contains(out+errOut, "--force") {
				t.Errorf("delete of a backup that does not exist advises --force:\n%s%s", out, errOut)
			}
		})
	}
	if ok, _ := cat.Exists(ctx, "newer"); !ok {
		t.Error("a refused delete deleted the backup")
	}
}

// TestPasswordFile: a password file others can read gets a warning, as ssh gives for keys; a
// file of white space is no password.
func TestPasswordFile(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	blank := filepath.Join(dir, "blank")
	_ = os.WriteFile(loose, []byte("pw\n"), 0o644)
	_ = os.Chmod(loose, 0o644)
	_ = os.WriteFile(blank, []byte(" \t\n"), 0o600)
	nowhere := []string{"--kubeconfig", filepath.Join(dir, "missing")}
	_, errOut, _ := run(t, append([]string{"restore", "b", "--from", "file://" + dir, "--password-file", loose}, nowhere...)...)
	if !strings.Contains(errOut, "warning: password file "+loose+" is accessible by group or others (mode 0644)") {
		t.Errorf("no warning for a 0644 password file:\n%s", errOut)
	}
	_, errOut, code := run(t, append([]string{"create", "b", "--to", "file://" + dir, "--password-file", blank}, nowhere...)...)
	if code != ExitFailed || !strings.Contains(errOut, "holds only white space") {
		t.Errorf("exit %d for a blank password file:\n%s", code, errOut)
	}
	// Every command that reads the file warns, not only create and restore.
	ctx := context.Background()
	l, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "with-data", Status: catalog.Completed,
		Volumes: []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: "fs", KopiaSnapshot: "k0123", Status: catalog.VolumeCompleted}}}
	if err := catalog.New(l).WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"delete", "with-data"},
		{"ls", "with-data", "shop/data"},
		{"verify", "with-data"},
		{"repo", "change-password", "--new-password-file", blank},
	} {
		_, errOut, _ := run(t, append(args, "--from", "file://"+dir, "--password-file", loose)...)
		if !strings.Contains(errOut, "warning: password file "+loose+" is accessible by group or others") {
			t.Errorf("%s: no warning for a 0644 password file:\n%s", strings.Join(args, " "), errOut)
		}
	}
	// What is no password file is refused before it is read.
	_, errOut, code = run(t, "delete", "with-data", "--from", "file://"+dir, "--password-file", "/dev/zero")
	if code != ExitFailed || !strings.Contains(errOut, "/dev/zero is a character device, not a regular file") {
		t.Errorf("delete --password-file /dev/zero: exit %d\n%s", code, errOut)
	}
}
