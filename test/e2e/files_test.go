//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runPluginWithoutCluster runs the plugin with a kubeconfig that does not exist: what a user
// with the bucket and the password only (the cluster gone) has.
func runPluginWithoutCluster(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	bin := plugin(t) // built once, on the first call: not within this command's timeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password", "KUBECONFIG="+filepath.Join(t.TempDir(), "no-such-kubeconfig"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run plugin %v: %v", args, err)
	}
	t.Logf("kubectl-pvbackup %s (no cluster): exit %d in %s\nstderr:\n%s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), head(r.stderr))
	return r
}

// localSums lists dir as sumScript lists /data: path, type, mode, owner (when owners were
// restored), size and md5, or a link's target.
func localSums(t *testing.T, dir string, owners bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		key := "./" + rel
		st := fi.Sys().(*syscall.Stat_t)
		owner := ""
		if owners {
			owner = fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[key] = key + " link " + l
		case fi.IsDir():
			out[key] = fmt.Sprintf("%s dir %o%s", key, fi.Mode().Perm(), owner)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := md5.Sum(b)
			out[key] = fmt.Sprintf("%s file %o%s %d %s", key, fi.Mode().Perm(), owner, fi.Size(), hex.EncodeToString(h[:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parseSums turns sumScript's output into lines by path, without owners unless asked.
func parseSums(s string, owners bool) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if !owners && (f[1] == "dir" || f[1] == "file") && len(f) >= 4 {
			f = append(f[:3], f[4:]...) // drop uid:gid
		}
		out[f[0]] = strings.Join(f, " ")
	}
	return out
}

func TestFilesFromBucket(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-files")
	c.PVC(t, ns, "data", "1Gi", nil)
	c.RunJob(t, ns, "fill", "data", 3*time.Minute, "sh", "-c", writeScript)
	want := c.listing(t, ns, "sum-before", c.RunJob(t, ns, "sum-before", "data", 3*time.Minute, "sh", "-c", sumScript))
	loc := c.location(t)
	name := "files-" + randomSuffix()
	r := runPlugin(t, 10*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}

	// ls and cat with the bucket only.
	r = runPluginWithoutCluster(t, 2*time.Minute, "ls", name, "--from", loc)
	if r.code != 0 || !strings.Contains(r.stdout, ns+"/data") {
		t.Errorf("ls: exit %d\n%s", r.code, r.stdout)
	}
	r = runPluginWithoutCluster(t, 2*time.Minute, "ls", name, ns+"/data:/small", "-R", "-l", "--from", loc)
	if r.code != 0 || !strings.Contains(r.stdout, "/small/a/f299.txt") || !strings.Contains(r.stdout, "/small/a/b/r49.bin") {
		t.Errorf("ls -R -l: exit %d\n%s", r.code, head(r.stdout))
	}
	r = runPluginWithoutCluster(t, 2*time.Minute, "cat", name, ns+"/data:/small/a/f7.txt", "--from", loc)
	if r.code != 0 || r.stdout != "file 7 \n" {
		t.Errorf("cat: exit %d, %q", r.code, r.stdout)
	}

	// cp of the whole tree equals the original: checksums, modes, symlinks (owners when root).
	dest := filepath.Join(t.TempDir(), "copy")
	r = runPluginWithoutCluster(t, 5*time.Minute, "cp", name, ns+"/data", dest, "--from", loc)
	if r.code != 0 {
		t.Fatalf("cp: exit %d\n%s", r.code, r.stdout)
	}
	owners := os.Geteuid() == 0
	got := localSums(t, dest, owners)
	wantSums := parseSums(want, owners)
	for k, v := range wantSums {
		if got[k] != v {
			t.Errorf("cp: %s\n got  %q\n want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := wantSums[k]; !ok {
			t.Errorf("cp: %s was copied but is not in the volume", k)
		}
	}
	// A rerun writes nothing.
	r = runPluginWithoutCluster(t, 5*time.Minute, "cp", name, ns+"/data", dest, "--from", loc)
	if r.code != 0 || !strings.Contains(r.stdout, "Copied 0 files") {
		t.Errorf("cp again: exit %d\n%s", r.code, r.stdout)
	}

	// Data only, into a new claim: the claim is created from the backed-up spec and filled.
	r = runPlugin(t, 10*time.Minute, append([]string{"restore", name, "--from", loc, "--data-only", "--volumes", ns + "/data", "--target-pvc", ns + "/data-copy"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("restore --data-only: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	copied := c.listing(t, ns, "sum-copy", c.RunJob(t, ns, "sum-copy", "data-copy", 3*time.Minute, "sh", "-c", sumScript))
	compareSums(t, map[string]string{"data": want}, map[string]string{"data": copied}, "data-only restore")
	// Into a claim that holds data: refused, nothing written.
	r = runPlugin(t, 10*time.Minute, append([]string{"restore", name, "--from", loc, "--data-only", "--volumes", ns + "/data"}, moverArgs()...)...)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "not empty") {
		t.Errorf("restore --data-only into a used claim: exit %d\n%s", r.code, r.stdout)
	}
	pvcs, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pvcs.Items) != 2 {
		t.Errorf("claims after the data-only restores: %v, %v", pvcs, err)
	}
	c.noLeftovers(t, name)
}
