package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// TestMain keeps key wrapping cheap (the real Argon2id takes a good part of a second on a shared
// test machine) and lets a test run `repo change-password` in a child process (this test binary), to kill it.
func TestMain(m *testing.M) {
	keyring.SetTestCost()
	if os.Getenv("PVBACKUP_TEST_CHILD") == "change-password" {
		os.Exit(changePasswordChild())
	}
	os.Exit(m.Run())
}

// changePasswordChild runs the command; after each step it says so on stdout, and at the step
// PVBACKUP_TEST_STOP_AT it waits to be killed.
func changePasswordChild() int {
	o := &RepoChangePasswordOptions{streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: os.Stdout, ErrOut: os.Stderr}}
	o.location.URL = os.Getenv("PVBACKUP_LOCATION")
	o.password.File, o.NewPasswordFile = os.Getenv("OLD_FILE"), os.Getenv("NEW_FILE")
	o.afterStep = func(step string) error {
		fmt.Println("step", step)
		if step == os.Getenv("PVBACKUP_TEST_STOP_AT") {
			select {}
		}
		return nil
	}
	if err := o.Complete(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := o.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type pwLocation struct {
	url, old, new string // location URL, files holding the old and the new password
	key           *keyring.Keyring
}

func newPWLocation(t *testing.T) pwLocation {
	t.Helper()
	dir := t.TempDir()
	l := pwLocation{url: "file://" + filepath.Join(dir, "loc"), old: filepath.Join(dir, "old"), new: filepath.Join(dir, "new")}
	for f, pw := range map[string]string{l.old: "old password", l.new: "new password\n"} {
		if err := os.WriteFile(f, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loc := l.open(t)
	var err error
	if l.key, err = keyring.Create(context.Background(), loc, "old password"); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l pwLocation) open(t *testing.T) *store.Location {
	t.Helper()
	loc, err := store.Open(context.Background(), l.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	return loc
}

// opensWith says which of the passwords open the location, and fails if one opens another key.
func (l pwLocation) opensWith(t *testing.T, passwords ...string) []string {
	t.Helper()
	var ok []string
	for _, pw := range passwords {
		k, err := keyring.Open(context.Background(), l.open(t), pw)
		switch {
		case err == nil && archiveKey(t, k) != archiveKey(t, l.key):
			t.Fatalf("%q opens another key", pw)
		case err == nil:
			ok = append(ok, pw)
		case !errors.Is(err, keyring.ErrWrongPassword):
			t.Fatalf("open with %q: %v", pw, err)
		}
	}
	return ok
}

// TestRepoChangePassword: a repository and an archive made under the old password open with
// the new one after the change, and nothing opens with the old one.
func TestRepoChangePassword(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "")
	l := newPWLocation(t)
	if err := (&repo.Service{Location: l.url, Key: repo.OneKey(repoPassword(t, l.key, "shop")), CacheDir: t.TempDir()}).Ensure(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	var arch bytes.Buffer
	aw, _ := archive.NewWriter(&arch, archiveKey(t, l.key))
	_ = aw.Add(archive.Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: "shop", Name: "c"}, []byte(`{}`))
	_ = aw.Close()

	start := time.Now()
	out, errOut, code := run(t, "repo", "change-password", "--from", l.url, "--password-file", l.old, "--new-password-file", l.new)
	if code != 0 || !strings.Contains(out, "Changed the password of "+l.url) || !strings.Contains(out, "the old password opens nothing now") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	t.Logf("change-password (Argon2id at its test cost) took %s", time.Since(start))
	if got := l.opensWith(t, "old password", "new password"); strings.Join(got, ",") != "new password" {
		t.Fatalf("opens with %v, want the new password only", got)
	}
	k, err := keyring.Open(ctx, l.open(t), "new password")
	if err != nil {
		t.Fatal(err)
	}
	_, closeRepo, err := (&repo.Service{Location: l.url, Key: repo.OneKey(repoPassword(t, k, "shop")), CacheDir: t.TempDir()}).Open(ctx, "shop")
	if err != nil {
		t.Fatalf("the repository does not open after the change: %v", err)
	}
	closeRepo()
	if _, err := archive.NewReader(bytes.NewReader(arch.Bytes()), archiveKey(t, k)); err != nil {
		t.Fatalf("the archive does not open after the change: %v", err)
	}

	// A wrong current password is a clear error; so are bad new passwords. (The same change run
	// again succeeds: it finishes an interrupted one, see TestRepoChangePasswordKilled.)
	blank, other := filepath.Join(t.TempDir(), "blank"), filepath.Join(t.TempDir(), "other")
	_ = os.WriteFile(blank, []byte(" \t\n"), 0o600)
	_ = os.WriteFile(other, []byte("a third password"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--password-file", l.old, "--new-password-file", other}, "wrong repository password for " + l.url},
		{[]string{"--password-file", l.new, "--new-password-file", blank}, "the new password is empty or only whitespace"},
		{[]string{"--password-file", l.new, "--new-password-file", l.new}, "the new password is the current one"},
		{[]string{"--password-file", l.new}, "no new password: pass --new-password-file FILE"},
		{[]string{"--password-file", l.new, "--new-password-file", "/nonexistent"}, "read the new password"},
	} {
		_, errOut, code := run(t, append([]string{"repo", "change-password", "--from", l.url}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
	if got := l.opensWith(t, "old password", "new password"); strings.Join(got, ",") != "new password" {
		t.Fatalf("after the failed attempts it opens with %v", got)
	}
}

// TestRepoChangePasswordKilled kills (SIGKILL) a change-password process after each step:
// every backup still opens with the old or the new password, and running the same command
// again finishes the change.
func TestRepoChangePasswordKilled(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	for _, step := range []string{keyring.StepNextWritten, keyring.StepSwitched, keyring.StepCleaned} {
		t.Run(step, func(t *testing.T) {
			l := newPWLocation(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PVBACKUP_TEST_CHILD=change-password", "PVBACKUP_TEST_STOP_AT="+step,
				"PVBACKUP_LOCATION="+l.url, "OLD_FILE="+l.old, "NEW_FILE="+l.new)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			reached := false
			for sc.Scan() {
				if sc.Text() == "step "+step {
					reached = true
					break
				}
			}
			_ = cmd.Process.Kill() // SIGKILL: no deferred code runs
			_ = cmd.Wait()
			if !reached {
				t.Fatalf("the child never reached %s: %s", step, stderr.String())
			}
			if got := l.opensWith(t, "old password", "new password"); len(got) == 0 {
				t.Fatalf("killed after %s, neither password opens the location", step)
			}
			out, errOut, code := run(t, "repo", "change-password", "--from", l.url, "--password-file", l.old, "--new-password-file", l.new)
			if code != 0 {
				t.Fatalf("run again after a kill at %s: exit %d:\n%s%s", step, code, out, errOut)
			}
			if got := l.opensWith(t, "old password", "new password"); strings.Join(got, ",") != "new password" {
				t.Fatalf("after the rerun it opens with %v, want the new password only", got)
			}
			if ok, _ := l.open(t).Bucket().Exists(context.Background(), keyring.NextFile); ok {
				t.Error(keyring.NextFile + " left behind")
			}
		})
	}
}

// Two changes at once: the second fails naming the first, which holds the location's lease
// (both used to report success, and only one new password worked). The first, killed, is
// finished by running it again.
func TestRepoChangePasswordTwiceAtOnce(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	l := newPWLocation(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PVBACKUP_TEST_CHILD=change-password", "PVBACKUP_TEST_STOP_AT="+keyring.StepNextWritten,
		"PVBACKUP_LOCATION="+l.url, "OLD_FILE="+l.old, "NEW_FILE="+l.new)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "step "+keyring.StepNextWritten {
	}
	third := filepath.Join(t.TempDir(), "third")
	_ = os.WriteFile(third, []byte("a third password"), 0o600)
	_, errOut, code := run(t, "repo", "change-password", "--from", l.url, "--password-file", l.old, "--new-password-file", third)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("pid %d is running repo change-password there", cmd.Process.Pid)) {
		t.Fatalf("a second change while the first runs: exit %d\n%s", code, errOut)
	}
	if got := l.opensWith(t, "old password", "new password", "a third password"); slices.Contains(got, "a third password") {
		t.Fatalf("the second change took effect: the location opens with %v", got)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if out, errOut, code := run(t, "repo", "change-password", "--from", l.url, "--password-file", l.old, "--new-password-file", l.new); code != 0 {
		t.Fatalf("the first change run again: exit %d\n%s%s", code, out, errOut)
	}
	if got := l.opensWith(t, "old password", "new password", "a third password"); strings.Join(got, ",") != "new password" {
		t.Fatalf("opens with %v, want the first change's password only", got)
	}
}

// TestOldFormatBackup: a format-1 backup (made by a development build with the password itself)
// is listed but not restored, with an error that says what to do.
func TestOldFormatBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loc, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	cat := catalog.New(loc)
	if err := cat.WriteManifest(ctx, &catalog.Manifest{FormatVersion: 1, Name: "old-1", Status: catalog.Completed}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	out, _, code := run(t, "list", "--from", "file://"+dir)
	if code != 0 || !strings.Contains(out, "old-1") {
		t.Fatalf("list: exit %d:\n%s", code, out)
	}
	// No cluster is needed to refuse it: the location has no key.
	_, errOut, code := run(t, "restore", "old-1", "--from", "file://"+dir, "--kubeconfig", filepath.Join(dir, "none"))
	if code != 1 || !strings.Contains(errOut, "before per-namespace keys") || !strings.Contains(errOut, "new location or prefix") {
		t.Fatalf("restore of a format-1 backup: exit %d: %s", code, errOut)
	}
}
