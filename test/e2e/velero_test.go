//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// veleroBucket puts the bucket Velero 1.18.3 wrote (testdata/velero/v1.18/bucket: backups and
// Kopia repositories) under a fresh prefix of the lab's SeaweedFS and returns its URL and bucket.
func (c *Cluster) veleroBucket(t *testing.T) (string, *blob.Bucket) {
	t.Helper()
	loc := c.location(t)
	bucketURL, prefix, err := store.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	b = blob.PrefixedBucket(b, prefix)
	t.Cleanup(func() { _ = b.Close() })
	src := golden.Path("velero/v1.18/bucket")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return b.WriteAll(ctx, filepath.ToSlash(rel), data, nil)
	})
	if err != nil {
		t.Fatalf("upload the Velero fixture: %v", err)
	}
	return loc, b
}

// objectsState is every object of b: key, size, ETag and content hash.
func objectsState(t *testing.T, b *blob.Bucket) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		a, err := b.Attributes(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %d %s %x", obj.Key, obj.Size, a.ETag, sha256.Sum256(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// kubectl runs the lab's kubectl.
func kubectl(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, env(t, "PVBACKUP_KUBECTL"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// veleroFiles are the files each fixture volume holds (hack/velero-lab.sh, WRITE_DATA), by sha256.
func veleroFiles(ns string) string {
	var lines strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	files := map[string]string{
		"./dir/a.txt":     lines.String(),
		"./dir/sub/b.bin": strings.Repeat("b", 4096),
		"./hello.txt":     "hello from " + ns + "\n",
	}
	var out []string
	for name, content := range files {
		out = append(out, fmt.Sprintf("%x  %s", sha256.Sum256([]byte(content)), name))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestVeleroRestore: with nothing of Velero installed, `velero restore` brings back the
// workloads of Velero's fs-backup and data-mover backups into namespaces of their own, their
// pods Running with the files Velero backed up (checksums, and times older than the restore:
// the app did not write them again), and Velero's bucket is unchanged, ETag for ETag.
func TestVeleroRestore(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	loc, b := c.veleroBucket(t)
	for _, tc := range []struct{ backup, sourceNS, selector, workload string }{
		{"fs-deploy", "vl-fs", "app=files", "deploy/files"},
		{"datamover-sts", "vl-dm", "app=db", "sts/db"},
	} {
		t.Run(tc.backup, func(t *testing.T) {
			t.Parallel()
			before := objectsState(t, b)
			ns := c.Namespace(t, "e2e-velero")
			start := time.Now()
			args := append([]string{"velero", "restore", tc.backup, "--from-velero", loc, "--namespace-mapping", tc.sourceNS + ":" + ns}, moverArgs()...)
			r := runPlugin(t, 5*time.Minute, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "Velero's built-in default password") || !strings.Contains(r.stdout, "1 volume restored") {
				t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
			kubectl(t, 3*time.Minute, "rollout", "status", "-n", ns, tc.workload, "--timeout=170s")
			pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: tc.selector})
			if err != nil || len(pods.Items) != 1 {
				t.Fatalf("pods %v %v", pods, err)
			}
			for _, ic := range pods.Items[0].Spec.InitContainers {
				t.Errorf("init container %s in the restored pod", ic.Name)
			}
			pod := "pod/" + pods.Items[0].Name
			sums := strings.Split(strings.TrimSpace(kubectl(t, time.Minute, "exec", "-n", ns, pod, "--", "sh", "-c", "cd /data && find . -type f ! -path './lost+found/*' | xargs sha256sum")), "\n")
			sort.Strings(sums)
			if got, want := strings.Join(sums, "\n"), veleroFiles(tc.sourceNS); got != want {
				t.Errorf("files of the restored claim:\n%s\nwant:\n%s", got, want)
			}
			mtime, err := strconv.ParseInt(strings.TrimSpace(kubectl(t, time.Minute, "exec", "-n", ns, pod, "--", "stat", "-c", "%Y", "/data/hello.txt")), 10, 64)
			if err != nil || mtime >= start.Unix() {
				t.Errorf("hello.txt was written at %d (%v), after the restore started (%d): the app wrote it, not the restore", mtime, err, start.Unix())
			}
			if after := objectsState(t, b); after != before {
				t.Errorf("Velero's bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}
