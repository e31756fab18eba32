//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// linkScript writes a file with three names across directories and one with two.
const linkScript = `set -e
mkdir -p /data/a/b /data/c
echo "one file, three names" > /data/a/one
ln /data/a/one /data/a/b/one && ln /data/a/one /data/c/one
echo "two names" > /data/two && ln /data/two /data/c/two
echo alone > /data/alone
sync`

// linkCheck prints each path's link count and whether it is the same file as its group's first.
const linkCheck = `cd /data && for f in a/one a/b/one c/one two c/two alone; do echo "$f $(stat -c %h $f)"; done
[ a/one -ef a/b/one ] && [ a/one -ef c/one ] && echo "group one linked"
[ two -ef c/two ] && echo "group two linked"
echo "` + sumEnd + `"`

const linksWant = `a/one 3
a/b/one 3
c/one 3
two 2
c/two 2
alone 1
group one linked
group two linked`

// TestHardLinksOnVolumes: hard links of a volume come back as hard links from an fs and a
// snapshot-move backup (a restore into a new claim), and from cp on this machine; verify counts
// them.
func TestHardLinksOnVolumes(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-hardlinks")
	c.PVC(t, ns, "data", "100Mi", nil)
	c.RunJob(t, ns, "write", "data", 3*time.Minute, "sh", "-c", linkScript)
	if got := c.linkCounts(t, ns, "check-source", "data"); got != linksWant {
		t.Fatalf("the source volume's links:\n%s", got)
	}
	c.deleteJobs(t, ns)
	loc := c.location(t)
	for _, mode := range []string{"fs", "snapshot-move"} {
		name := "links-" + mode + "-" + randomSuffix()
		r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "--volumes", mode}, moverArgs()...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "(3 hard links)") {
			t.Fatalf("create --volumes %s: exit %d, want 3 hard links recorded\n%s", mode, r.code, r.stdout)
		}
		copyPVC := "copy-" + strings.ReplaceAll(mode, "-", "")
		r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--data-only", "--volumes", ns + "/data", "--target-pvc", ns + "/" + copyPVC}, moverArgs()...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "3 hard links made again") {
			t.Fatalf("restore of the %s backup: exit %d\n%s", mode, r.code, r.stdout)
		}
		if got := c.linkCounts(t, ns, "check-"+copyPVC, copyPVC); got != linksWant {
			t.Errorf("links after a restore of the %s backup:\n%s\nwant:\n%s", mode, got, linksWant)
		}
		c.deleteJobs(t, ns)
		r = runPluginWithoutCluster(t, 2*time.Minute, "verify", name, "--from", loc)
		if r.code != 0 || !strings.Contains(r.stdout, "(3 hard links)") {
			t.Errorf("verify of the %s backup: exit %d\n%s", mode, r.code, r.stdout)
		}
		if mode != "fs" {
			continue
		}
		dest := t.TempDir()
		r = runPluginWithoutCluster(t, 2*time.Minute, "cp", name, ns+"/data", dest, "--from", loc)
		if r.code != 0 || !strings.Contains(r.stdout, "3 hard links made again") {
			t.Fatalf("cp: exit %d\n%s", r.code, r.stdout)
		}
		a, errA := os.Stat(filepath.Join(dest, "a/one"))
		b, errB := os.Stat(filepath.Join(dest, "c/one"))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("cp: a/one and c/one are not one file (%v, %v)", errA, errB)
		}
	}
}

func (c *Cluster) linkCounts(t *testing.T, ns, job, pvc string) string {
	t.Helper()
	return strings.TrimSpace(c.listing(t, ns, job, c.RunJob(t, ns, job, pvc, 3*time.Minute, "sh", "-c", linkCheck)))
}
