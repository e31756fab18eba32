//go:build e2e && measure

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// TestMeasureVolumes prints the figures of docs/volumes.md (make bench-volumes): the per-volume
// orchestration overhead of snapshot-move for a 1 MiB volume (the volume's time minus the mover's
// own), and the time to back up 10 small PVCs with --parallel 1 and 4.
func TestMeasureVolumes(t *testing.T) {
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-measure")
	var claims []string
	for i := 0; i < 10; i++ {
		n := fmt.Sprintf("v%d", i)
		claims = append(claims, n)
		c.PVC(t, ns, n, "16Mi", nil)
	}
	for _, n := range claims {
		c.RunJob(t, ns, "fill-"+n, n, 3*time.Minute, "sh", "-c", "head -c 1048576 /dev/urandom > /data/blob && sync")
	}
	// Finished pods that mount the claims would count as their users (fs mode pins movers to them).
	c.deleteJobs(t, ns)
	loc := c.location(t)

	backup := func(name string, args ...string) (catalog.Manifest, time.Duration) {
		r := runPlugin(t, 20*time.Minute, append(append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "-o", "json"}, args...), moverArgs()...)...)
		if r.code != 0 {
			t.Fatalf("create %s: exit %d\n%s", name, r.code, r.stdout)
		}
		var m catalog.Manifest
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatal(err)
		}
		// The next run starts on a quiet cluster: the controllers have finished deleting this
		// run's snapshots, temporary claims and volumes.
		c.noLeftovers(t, name)
		return m, r.took
	}
	// One volume alone, three times: its time minus its mover's own time is the orchestration
	// overhead (snapshot until ready, temporary PVC, Job, pod start, cleanup). Alone, because with
	// more volumes their snapshots are requested together and later volumes find theirs ready.
	one := c.Namespace(t, "e2e-measure-one")
	c.PVC(t, one, "one", "16Mi", nil)
	c.RunJob(t, one, "fill-one", "one", 3*time.Minute, "sh", "-c", "head -c 1048576 /dev/urandom > /data/blob && sync")
	c.deleteJobs(t, one)
	var overhead []string
	for i := 0; i < 3; i++ {
		r := runPlugin(t, 10*time.Minute, append([]string{"create", fmt.Sprintf("one-%d", i), "--to", loc, "--include-namespaces", one, "-o", "json", "--volumes", "snapshot-move"}, moverArgs()...)...)
		var m catalog.Manifest
		if err := json.Unmarshal([]byte(r.stdout), &m); r.code != 0 || err != nil || len(m.Volumes) != 1 {
			t.Fatalf("create one-%d: exit %d %v\n%s", i, r.code, err, r.stdout)
		}
		c.noLeftovers(t, m.Name)
		v := m.Volumes[0]
		overhead = append(overhead, fmt.Sprintf("%.1fs (volume %.1fs, mover %.1fs)", v.Seconds-v.MoverSeconds, v.Seconds, v.MoverSeconds))
	}
	_, t1 := backup("p1", "--volumes", "snapshot-move", "--parallel", "1")
	_, t4 := backup("p4", "--volumes", "snapshot-move", "--parallel", "4")
	_, f1 := backup("fs1", "--volumes", "fs", "--parallel", "1")
	_, f4 := backup("fs4", "--volumes", "fs", "--parallel", "4")
	t.Logf("MEASURE snapshot-move orchestration overhead of one 1 MiB volume (volume time minus mover time), 3 runs: %s", strings.Join(overhead, ", "))
	t.Logf("MEASURE 10 x 1 MiB PVCs, snapshot-move: --parallel 1 %s, --parallel 4 %s (%.2fx)", t1.Round(100*time.Millisecond), t4.Round(100*time.Millisecond), t1.Seconds()/t4.Seconds())
	t.Logf("MEASURE 10 x 1 MiB PVCs, fs: --parallel 1 %s, --parallel 4 %s (%.2fx)", f1.Round(100*time.Millisecond), f4.Round(100*time.Millisecond), f1.Seconds()/f4.Seconds())
}
