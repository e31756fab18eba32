//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// These tests taint, cordon or stop a node: cluster-wide state, so they do not call t.Parallel
// and Go runs them first, alone (hack/e2e.sh).

// setNode changes a node and registers the undo.
func (c *Cluster) setNode(t *testing.T, name string, change, undo func(*corev1.Node)) {
	t.Helper()
	ctx := context.Background()
	update := func(f func(*corev1.Node)) error {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		f(n)
		_, err = c.Kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	}
	t.Cleanup(func() {
		if err := update(undo); err != nil {
			t.Errorf("undo the change of node %s: %v", name, err)
		}
	})
	if err := update(change); err != nil {
		t.Fatalf("change node %s: %v", name, err)
	}
}

// TestPlacementTaintedNode: the fs mover of a zonal disk in use by a pod on a tainted node runs
// there, with the pod's tolerations.
func TestPlacementTaintedNode(t *testing.T) {
	c := NewCluster(t)
	_, _, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-place-taint")
	taint := corev1.Taint{Key: "pvbackup.io/e2e-dedicated", Value: ns, Effect: corev1.TaintEffectNoSchedule}
	c.classPVC(t, ns, "disk", os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), nil)
	// The pod tolerates the taint, as a workload on a dedicated node does; the mover must copy that.
	tolerate := func(p *corev1.PodSpec) {
		p.Tolerations = []corev1.Toleration{{Key: taint.Key, Operator: corev1.TolerationOpEqual, Value: taint.Value, Effect: taint.Effect}}
	}
	holder := c.startPodWith(t, ns, "holder", "disk", cc, tolerate, "sh", "-c", "echo tainted > /data/token && sync && sleep 3600")
	c.waitPod(t, ns, holder, 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	c.setNode(t, cc, func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, taint) }, func(n *corev1.Node) {
		var keep []corev1.Taint
		for _, x := range n.Spec.Taints {
			if x.Key != taint.Key {
				keep = append(keep, x)
			}
		}
		n.Spec.Taints = keep
	})
	m := c.backupJSON(t, ns, c.location(t), "taint-"+randomSuffix(), "fs", "--include-resources", "persistentvolumeclaims")
	if len(m.Volumes) != 1 || m.Volumes[0].Status != catalog.VolumeCompleted || m.Volumes[0].MoverNode != cc {
		t.Fatalf("backup beside a pod on the tainted node %s: %+v", cc, m.Volumes)
	}
}

// faultBackup starts an fs backup of a csi-local claim on node, holding enough data that its
// mover is still running when fault is applied, and returns the backup's result and how long it
// took after the fault.
func (c *Cluster) faultBackup(t *testing.T, prefix, node string, fault func(pod *corev1.Pod)) (catalog.Volume, time.Duration, string) {
	t.Helper()
	ns := c.Namespace(t, prefix)
	c.classPVC(t, ns, "data", os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS"), nil)
	c.runJob(t, ns, "write", "data", 2*time.Minute, onNode(node), []string{"sh", "-c", "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/urandom > /data/f$i; i=$((i+1)); done; sync"})
	name := prefix + "-" + randomSuffix()
	args := append([]string{"create", name, "--to", c.location(t), "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "--volumes", "fs", "-o", "json"}, moverArgs()...)
	cmd := exec.Command(plugin(t), args...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mover *corev1.Pod
	lw := kube.ListWatch(c.Kube.CoreV1().Pods(ns), c.Kube, kube.Labelled(map[string]string{volumes.LabelBackup: name}))
	if err := untilPod(ctx, lw, func(p *corev1.Pod) bool { mover = p; return p.Status.Phase == corev1.PodRunning }); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the mover did not run: %v\n%s\n%s", err, stderr.String(), c.Diagnose(ns))
	}
	if mover.Spec.NodeName != node {
		_ = cmd.Process.Kill()
		t.Fatalf("mover on %s, want %s", mover.Spec.NodeName, node)
	}
	fault(mover)
	start := time.Now()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("the backup did not end within 3 minutes of the fault\n%s", stderr.String())
	}
	took := time.Since(start)
	t.Logf("kubectl-pvbackup %s:\n%s", strings.Join(args, " "), stderr.String())
	var m catalog.Manifest
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || len(m.Volumes) != 1 {
		t.Fatalf("manifest: %v: %+v\n%s", err, m.Volumes, out.String())
	}
	return m.Volumes[0], took, name
}

// TestPlacementNodeFaults: a mover's node drained under it (cordoned, the pod evicted) fails the
// volume within seconds naming the eviction and the node; a mover's node whose kubelet stops
// fails it once the node is NotReady, long before --timeout, and `cleanup` after the node is back
// leaves nothing.
func TestPlacementNodeFaults(t *testing.T) {
	c := NewCluster(t)
	_, b, cc := labNodes(t)
	ctx := context.Background()

	v, took, _ := c.faultBackup(t, "e2e-drain", cc, func(p *corev1.Pod) {
		c.setNode(t, cc, func(n *corev1.Node) { n.Spec.Unschedulable = true }, func(n *corev1.Node) { n.Spec.Unschedulable = false })
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := c.Kube.CoreV1().Pods(p.Namespace).EvictV1(ctx, ev); err != nil {
			t.Fatalf("evict %s: %v", p.Name, err)
		}
	})
	t.Logf("MEASURE drained mover: failed %.1fs after the eviction: %s", took.Seconds(), v.Error)
	if v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "was evicted") || !strings.Contains(v.Error, "node "+cc+" is cordoned") || took > 30*time.Second {
		t.Errorf("drained: %s after %s: %q", v.Status, took, v.Error)
	}

	v, took, name := c.faultBackup(t, "e2e-notready", b, func(*corev1.Pod) {
		clusterScript(t, "kubelet", "stop", b)
		t.Cleanup(func() { clusterScript(t, "kubelet", "start", b) })
	})
	t.Logf("MEASURE NotReady mover: failed %.1fs after the kubelet stopped: %s", took.Seconds(), v.Error)
	if v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "node "+b+" is NotReady") || took > 2*time.Minute {
		t.Errorf("kubelet stopped: %s after %s: %q", v.Status, took, v.Error)
	}
	clusterScript(t, "kubelet", "start", b)
	r := runPlugin(t, 3*time.Minute, "cleanup", "--backup", name)
	if r.code != 0 {
		t.Errorf("cleanup after the node came back: exit %d\n%s", r.code, r.stdout)
	}
	c.noLeftovers(t, name)
}

// untilPod watches pods until cond holds for one.
func untilPod(ctx context.Context, lw cache.ListerWatcher, cond func(*corev1.Pod) bool) error {
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		return ok && cond(p), nil
	})
	return err
}
