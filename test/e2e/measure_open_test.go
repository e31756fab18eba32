//go:build e2e && measure

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// maxOpenSeconds is the bound of issue 12: every snapshot-move mover opens its repository in ≤ 2 s.
const maxOpenSeconds = 2.0

// TestMeasureMoverOpen runs PVBACKUP_MEASURE_MOVERS (default 100) snapshot-move movers in a row —
// backups of 10 small PVCs one at a time, so each mover starts right after the previous volume's
// cleanup, where the 27 s open stall was seen — with --mover-debug, and prints the distribution of
// their repository open times; any open slower than 2 s fails the test with the mover's storage
// calls (make bench-open).
func TestMeasureMoverOpen(t *testing.T) {
	want := 100
	if v, err := strconv.Atoi(os.Getenv("PVBACKUP_MEASURE_MOVERS")); err == nil && v > 0 {
		want = v
	}
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-open")
	const pvcs = 10
	for i := 0; i < pvcs; i++ {
		n := fmt.Sprintf("v%d", i)
		c.PVC(t, ns, n, "16Mi", nil)
		c.RunJob(t, ns, "fill-"+n, n, 3*time.Minute, "sh", "-c", "head -c 65536 /dev/urandom > /data/blob && sync")
	}
	c.deleteJobs(t, ns)
	loc := c.location(t)

	var opens []float64
	var slow []string
	for run := 0; len(opens) < want; run++ {
		name := fmt.Sprintf("open-%d", run)
		r := runPlugin(t, 20*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "-o", "json",
			"--volumes", "snapshot-move", "--parallel", "1", "--mover-debug"}, moverArgs()...)...)
		var m catalog.Manifest
		if err := json.Unmarshal([]byte(r.stdout), &m); r.code != 0 || err != nil {
			t.Fatalf("create %s: exit %d %v\n%s", name, r.code, err, r.stdout)
		}
		for _, v := range m.Volumes {
			if len(opens) == want {
				break
			}
			if v.MoverOpenSeconds == 0 {
				t.Fatalf("backup %s volume %s: no open time in the manifest (is the mover image of this version?)", name, v.PVC)
			}
			opens = append(opens, v.MoverOpenSeconds)
			if v.MoverOpenSeconds > maxOpenSeconds {
				slow = append(slow, fmt.Sprintf("%s %s: open %.2fs\n  %s", name, v.PVC, v.MoverOpenSeconds, strings.Join(v.MoverDebug, "\n  ")))
			}
		}
		c.noLeftovers(t, name)
	}
	sorted := append([]float64(nil), opens...)
	sort.Float64s(sorted)
	pct := func(p float64) float64 { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	t.Logf("MEASURE repository open of %d snapshot-move movers in a row: p50 %.2fs p90 %.2fs p99 %.2fs max %.2fs (bound %.0fs)",
		len(opens), pct(0.5), pct(0.9), pct(0.99), sorted[len(sorted)-1], maxOpenSeconds)
	if len(slow) > 0 {
		t.Errorf("%d of %d movers took more than %.0fs to open the repository:\n%s", len(slow), len(opens), maxOpenSeconds, strings.Join(slow, "\n"))
	}
}
