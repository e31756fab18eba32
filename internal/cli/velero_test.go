package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// veleroFixture copies the bucket Velero 1.18.3 wrote in the lab (testdata/velero/v1.18) and
// returns its URL.
func veleroFixture(t *testing.T) (string, string) {
	t.Helper()
	dst := golden.Copy(t, "velero/v1.18/bucket")
	return "file://" + dst, dst
}

// TestVeleroGolden: list and describe of each fixture backup, as text and as JSON.
func TestVeleroGolden(t *testing.T) {
	url, _ := veleroFixture(t)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"velero-list.golden", []string{"velero", "list", "--from-velero", url}},
		{"velero-list.json.golden", []string{"velero", "list", "--from-velero", url, "-o", "json"}},
		{"velero-describe-resources-only.golden", []string{"velero", "describe", "resources-only", "--from-velero", url}},
		{"velero-describe-fs-deploy.golden", []string{"velero", "describe", "fs-deploy", "--from-velero", url}},
		{"velero-describe-datamover-sts.golden", []string{"velero", "describe", "datamover-sts", "--from-velero", url}},
		{"velero-describe-partial.golden", []string{"velero", "describe", "partial", "--from-velero", url}},
		{"velero-describe-datamover-sts.json.golden", []string{"velero", "describe", "datamover-sts", "--from-velero", url, "-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := run(t, tc.args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Assert(t, "cli/"+tc.golden, []byte(out))
		})
	}
}

// TestVeleroRefusals: what list and describe say of a bucket that is not what Velero writes.
func TestVeleroRefusals(t *testing.T) {
	url, dir := veleroFixture(t)
	meta := filepath.Join(dir, "backups", "datamover-sts", "velero-backup.json")
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte(strings.Replace(string(data), `"formatVersion": "1.1.0"`, `"formatVersion": "2.0.0"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"velero", "describe", "datamover-sts", "--from-velero", url}, `error: backup "datamover-sts" has Velero format 2.0.0; this build reads format 1.x only` + "\n"},
		{[]string{"velero", "describe", "nope", "--from-velero", url}, `error: no Velero backup "nope" in ` + url + ` (no backups/nope/velero-backup.json): not found` + "\n"},
		{[]string{"velero", "describe", "Bad_Name", "--from-velero", url}, `error: backup name "Bad_Name" is not valid for a Velero backup: it is a Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253)` + "\n"},
		{[]string{"velero", "list"}, "error: --from-velero is required: the URL of Velero's backup storage location (its bucket, with its prefix as the path)\n"},
		{[]string{"velero", "list", "--from-velero", "file://" + filepath.Join(dir, "missing")}, "error: open Velero location file://" + filepath.Join(dir, "missing") + ": stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code != ExitFailed || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d\n%s\nwant %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("reading a missing file:// location created it")
	}
}

// TestVeleroEscapes: text a bucket writer put in Velero's metadata (a phase, a failure reason, a
// storage location, labels, namespaces, a backup directory's name) reaches the terminal quoted,
// never as escape sequences that erase lines or forge rows.
func TestVeleroEscapes(t *testing.T) {
	url, dir := veleroFixture(t)
	meta := filepath.Join(dir, "backups", "partial", "velero-backup.json")
	var doc map[string]any
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	const evil = "\x1b[2K\x1b[1A\rok\u202e"
	status := doc["status"].(map[string]any)
	status["phase"] = "Completed" + evil
	status["failureReason"] = "fine" + evil
	spec := doc["spec"].(map[string]any)
	spec["storageLocation"] = "default" + evil
	spec["includedNamespaces"] = []any{"app" + evil}
	spec["labelSelector"] = map[string]any{"matchLabels": map[string]any{"a": "b"}}
	doc["metadata"].(map[string]any)["labels"] = map[string]any{"x": "y" + evil}
	if data, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, data, 0o644); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "backups", "odd\x1b[31m")
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(odd, "velero-backup.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"velero", "list", "--from-velero", url},
		{"velero", "describe", "partial", "--from-velero", url},
	} {
		out, errOut, _ := run(t, args...)
		for _, text := range []string{out, errOut} {
			if strings.ContainsAny(text, "\x1b\r\u202e") {
				t.Errorf("%v printed a raw escape:\n%q", args, text)
			}
		}
		if args[1] == "describe" && !strings.Contains(out, `Phase:         "Completed\x1b[2K\x1b[1A\rok\u202e"`) {
			t.Errorf("describe does not show the phase quoted:\n%s", out)
		}
	}
}
