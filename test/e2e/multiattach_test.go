//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// TestMultiAttach: a zonal disk (attachRequired) is attached to node b for its Running pod while a
// rolling update's new pod waits on node c with the attach-detach controller's Multi-Attach
// error (its name sorts first, so the pod list names it first). The fs mover of a backup runs on
// b, where the disk is attached, and succeeds — on c it would add a second Multi-Attach; the
// restore mover that fills an existing empty zonal claim a pod on b keeps mounted runs on b too.
func TestMultiAttach(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	_, b, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-multiattach")
	zonal := os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS")
	token := "attached-" + randomSuffix()
	c.classPVC(t, ns, "disk", zonal, nil)
	c.classPVC(t, ns, "empty", zonal, nil)
	holder := c.startPod(t, ns, "holder", "disk", b, "sh", "-c", "echo "+token+" > /data/token && sync && sleep 3600")
	// The fill's target: mounted on b by a pod that waits for the data, then prints it.
	reader := c.startPod(t, ns, "reader", "empty", b, "sh", "-c", "while [ ! -f /data/token ]; do sleep 1; done; cat /data/token; sleep 3600")
	running := func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }
	c.waitPod(t, ns, holder, 2*time.Minute, running)
	c.waitPod(t, ns, reader, 2*time.Minute, running)
	stuck := c.startPod(t, ns, "a-new", "disk", cc, "sleep", "3600")
	c.waitEvent(t, ns, stuck, "Multi-Attach error", time.Minute)

	loc := c.location(t)
	name := "multiattach-" + randomSuffix()
	m := c.backupJSON(t, ns, loc, name, "fs", "--include-resources", "persistentvolumeclaims", "--timeout", "2m")
	vols := map[string]catalog.Volume{}
	for _, v := range m.Volumes {
		vols[v.PVC] = v
	}
	if v := vols["disk"]; v.Status != catalog.VolumeCompleted || v.MoverNode != b || v.Files < 1 {
		t.Fatalf("fs mover of the disk attached to %s: %s on node %q, %d files (%s %s), want Completed on %s\n%s", b, v.Status, v.MoverNode, v.Files, v.Reason, v.Error, b, c.Diagnose(ns))
	}
	c.noLeftovers(t, name)

	r := runPlugin(t, 3*time.Minute, append([]string{"restore", name, "--from", loc, "--data-only", "--volumes", ns + "/disk", "--target-pvc", ns + "/empty", "--timeout", "2m", "-o", "json"}, moverArgs()...)...)
	var res restore.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Volumes) != 1 {
		t.Fatalf("restore into %s/empty: exit %d, %v\n%s\n%s", ns, r.code, err, r.stderr, c.Diagnose(ns))
	}
	if v := res.Volumes[0]; v.Action != restore.Restored || v.MoverNode != b {
		t.Fatalf("restore mover of the claim mounted on %s: %s on node %q (%s), want restored there\n%s", b, v.Action, v.MoverNode, v.Reason, c.Diagnose(ns))
	}
	if !c.logSays(t, ns, reader, token, 30*time.Second) {
		t.Fatalf("pod %s/%s on %s does not read the restored %q within 30s: %q", ns, reader, b, token, c.podLogs(t, ns, reader))
	}
	c.noLeftovers(t, name)
}

// logSays follows a pod's log until a line contains want (true), or timeout ends (false).
func (c *Cluster) logSays(t *testing.T, ns, pod, want string, timeout time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := c.Kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("follow the log of pod %s/%s: %v", ns, pod, err)
	}
	defer s.Close()
	sc := bufio.NewScanner(s)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return true
		}
	}
	return false
}
