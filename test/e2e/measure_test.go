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
		return m, r.took
	}
	// With --parallel 1 the volumes run one after the other: each one's time minus its mover's own
	// time is the orchestration overhead (snapshot, temporary PVC, Job, pod start, cleanup).
	m1, t1 := backup("p1", "--volumes", "snapshot-move", "--parallel", "1")
	var overhead []string
	for _, v := range m1.Volumes {
		overhead = append(overhead, fmt.Sprintf("%.1fs", v.Seconds-v.MoverSeconds))
	}
	_, t4 := backup("p4", "--volumes", "snapshot-move", "--parallel", "4")
	_, f1 := backup("fs1", "--volumes", "fs", "--parallel", "1")
	_, f4 := backup("fs4", "--volumes", "fs", "--parallel", "4")
	t.Logf("MEASURE snapshot-move per-volume overhead (1 MiB volumes, --parallel 1, volume time minus mover time): %s", strings.Join(overhead, " "))
	t.Logf("MEASURE 10 x 1 MiB PVCs, snapshot-move: --parallel 1 %s, --parallel 4 %s (%.2fx)", t1.Round(100*time.Millisecond), t4.Round(100*time.Millisecond), t1.Seconds()/t4.Seconds())
	t.Logf("MEASURE 10 x 1 MiB PVCs, fs: --parallel 1 %s, --parallel 4 %s (%.2fx)", f1.Round(100*time.Millisecond), f4.Round(100*time.Millisecond), f1.Seconds()/f4.Seconds())
}
