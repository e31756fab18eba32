package velero

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"gocloud.dev/blob/memblob"
)

const minimalBackup = `{"apiVersion":"velero.io/v1","kind":"Backup","metadata":{"name":"b1","namespace":"velero"},
"spec":{"includedNamespaces":["shop"],"ttl":"720h0m0s"},"status":{"phase":"%s","formatVersion":"%s"}}`

func backupJSON(phase, format string) []byte {
	return []byte(strings.Replace(strings.Replace(minimalBackup, "%s", phase, 1), "%s", format, 1))
}

func TestParseBackupRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, dir, data, want string
	}{
		{"not json", "b1", "{", "not a Velero Backup object"},
		{"not a backup", "b1", `{"apiVersion":"velero.io/v1","kind":"Restore","metadata":{"name":"b1"}}`, `a "Restore"`},
		{"other group", "b1", `{"apiVersion":"evil.io/v1","kind":"Backup","metadata":{"name":"b1"}}`, "not a velero.io Backup"},
		{"other name", "b2", string(backupJSON("Completed", "1.1.0")), `describes backup "b1", not "b2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBackup(tc.dir, []byte(tc.data))
			if err == nil || !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnreadable containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckRestorable(t *testing.T) {
	for _, tc := range []struct {
		phase, format string
		allow         bool
		want          error
		msg           string
	}{
		{"Completed", "1.1.0", false, nil, ""},
		{"Completed", "", false, nil, ""},
		{"PartiallyFailed", "1.1.0", true, nil, ""},
		{"PartiallyFailed", "1.1.0", false, ErrPartiallyFailed, "pass --allow-partially-failed"},
		{"Failed", "1.1.0", true, ErrPhase, `backup "b1" is Failed, not Completed`},
		{"InProgress", "1.1.0", true, ErrPhase, "is InProgress"},
		{"", "1.1.0", true, ErrPhase, "has no phase"},
		{"Completed", "2.0.0", true, ErrFormat, "has Velero format 2.0.0; this build reads format 1.x only"},
		{"Completed", "x.y", true, ErrUnreadable, "not a version"},
	} {
		b, err := ParseBackup("b1", backupJSON(tc.phase, tc.format))
		if err != nil {
			t.Fatal(err)
		}
		err = b.CheckRestorable(tc.allow)
		if !errors.Is(err, tc.want) || (tc.want != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s %s allow=%v: %v, want %v containing %q", tc.phase, tc.format, tc.allow, err, tc.want, tc.msg)
		}
	}
}

// TestListProblems: a directory without velero-backup.json, one with a damaged one and one whose
// name cannot be a backup's are listed with the reason; the good one is read.
func TestListProblems(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	put := func(key string, data []byte) {
		if err := b.WriteAll(ctx, key, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("backups/b1/velero-backup.json", backupJSON("Completed", "1.1.0"))
	put("backups/half/half.tar.gz", []byte("x"))
	put("backups/broken/velero-backup.json", []byte("{"))
	put("backups/Not_A_Name/velero-backup.json", []byte("{}"))
	loc := New(b, "mem://velero")
	got, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range got {
		s := e.Name + ": "
		if e.Backup != nil {
			s += e.Backup.Phase
		} else {
			s += e.Problem
		}
		lines = append(lines, s)
	}
	want := []string{
		`Not_A_Name: not a Velero backup: backup name "Not_A_Name" is not valid for a Velero backup`,
		"b1: Completed",
		"broken: backups/broken/velero-backup.json is not a Velero Backup object",
		"half: no velero-backup.json: not a Velero backup, or one Velero is still uploading",
	}
	for i := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want[i]) {
			t.Fatalf("list:\n%s\nwant prefixes:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
	if _, err := loc.Describe(ctx, "half"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `no Velero backup "half"`) {
		t.Errorf("describe of a directory without velero-backup.json: %v", err)
	}
}

func TestCheckNotVelero(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		keys  []string
		velro bool
	}{
		{"empty", nil, false},
		{"ours", []string{"keys/location.age", "backups/a/backup.json", "backups/a/resources.tar.gz.age", "kopia/ns/kopia.repository"}, false},
		{"velero backup", []string{"backups/nightly/velero-backup.json"}, true},
		{"velero restores", []string{"restores/r1/restore-r1-logs.gz"}, true},
		{"restic", []string{"restic/ns/config"}, true},
		{"deeper is not velero's", []string{"backups/a/x/velero-backup.json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			defer b.Close()
			for _, k := range tc.keys {
				if err := b.WriteAll(ctx, k, []byte("x"), nil); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckNotVelero(ctx, b, "mem://x/")
			if got := errors.Is(err, ErrVeleroLocation); got != tc.velro {
				t.Fatalf("CheckNotVelero = %v, want Velero's %v", err, tc.velro)
			}
			if tc.velro && !strings.Contains(err.Error(), "this prefix belongs to Velero") {
				t.Errorf("message: %v", err)
			}
		})
	}
}

func TestResolvePassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := dir + "/pw"
	if err := writeFile(file, "  from-file \n"); err != nil {
		t.Fatal(err)
	}
	secret := func(v string, ok bool) SecretReader {
		return func(context.Context) (string, bool, error) { return v, ok, nil }
	}
	for _, tc := range []struct {
		name, file string
		read       SecretReader
		want, src  string
	}{
		{"file first", file, secret("from-secret", true), "from-file", "--velero-password-file"},
		{"secret", "", secret(" from-secret\n", true), "from-secret", "Secret velero-repo-credentials"},
		{"no secret", "", secret("", false), DefaultPassword, "built-in default"},
		{"no cluster", "", nil, DefaultPassword, "built-in default"},
	} {
		p, err := ResolvePassword(ctx, tc.file, tc.read)
		if err != nil || p.Value != tc.want || !strings.Contains(p.Source, tc.src) {
			t.Errorf("%s: %+v %v, want %q from %q", tc.name, p, err, tc.want, tc.src)
		}
	}
	if DefaultPassword != "static-passw0rd" {
		t.Errorf("Velero's default password changed in this build: %q", DefaultPassword)
	}
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }
