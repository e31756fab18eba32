//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// Where each mover runs (docs/volumes.md), on the three-node lab: a in zone-a, b and c in zone-b.

// backupJSON runs a backup of a namespace and returns its manifest.
func (c *Cluster) backupJSON(t *testing.T, ns, loc, name, mode string) catalog.Manifest {
	t.Helper()
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
		"--volumes", mode, "-o", "json", "--parallel", "4"}, moverArgs()...)...)
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("create %s: exit %d, manifest: %v\n%s\n%s", name, r.code, err, r.stdout, c.Diagnose(ns))
	}
	return m
}

// TestPlacementBackup: an fs mover of a zonal disk in use runs on its pod's node; the mover of an
// unmounted zonal disk lands in its zone; the mover of a csi-local claim's snapshot lands on the
// node where the snapshot can be made into a claim (never Pending elsewhere).
func TestPlacementBackup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	a, b, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-place")
	zonal, local := os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	write := []string{"sh", "-c", "echo placed > /data/token && sync"}
	for _, v := range []struct{ claim, class, node string }{{"busy", zonal, b}, {"idle", zonal, a}, {"local", local, cc}} {
		c.classPVC(t, ns, v.claim, v.class, nil)
		c.runJob(t, ns, "write-"+v.claim, v.claim, 2*time.Minute, onNode(v.node), write)
	}
	c.waitPod(t, ns, c.startPod(t, ns, "holder", "busy", b, "sleep", "3600"), 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	loc := c.location(t)
	for _, tc := range []struct {
		mode string
		want map[string][]string // claim → nodes its mover may run on
	}{
		{"fs", map[string][]string{"busy": {b}, "idle": {a}, "local": {cc}}},
		{"snapshot-move", map[string][]string{"busy": {b, cc}, "idle": {a}, "local": {cc}}},
	} {
		name := "place-" + tc.mode + "-" + randomSuffix()
		m := c.backupJSON(t, ns, loc, name, tc.mode)
		if m.Status != catalog.Completed || len(m.Volumes) != 3 {
			t.Fatalf("%s backup %s with %d volumes: %+v\n%s", tc.mode, m.Status, len(m.Volumes), m.Volumes, c.Diagnose(ns))
		}
		for _, v := range m.Volumes {
			if v.Status != catalog.VolumeCompleted || v.Files < 1 || !contains(tc.want[v.PVC], v.MoverNode) {
				t.Errorf("%s mover of %s: %s on node %q (%s), want Completed on one of %v", tc.mode, v.PVC, v.Status, v.MoverNode, v.Error, tc.want[v.PVC])
			}
		}
		c.noLeftovers(t, name)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
