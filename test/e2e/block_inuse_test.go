//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// TestBlockInUseOnAnotherNode: a node-local (csi-local) block claim that a running pod on node b
// keeps mapped is not read directly (--volumes=fs fails, naming the pod: a device being written
// is no image), and auto backs it up by snapshot-move with the mover on node b, where the
// volume and its snapshot are.
func TestBlockInUseOnAnotherNode(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	local := os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	if local == "" {
		t.Fatal("PVBACKUP_LOCAL_STORAGE_CLASS is not set: a cluster from hack/cluster.sh up has it")
	}
	ns := c.Namespace(t, "e2e-block-inuse")
	_, b, _ := labNodes(t)
	c.BlockPVC(t, ns, "disk", local, nil)
	c.BlockJob(t, ns, "write", "disk", b, "TOKEN=inuse\n"+blockWriteScript)
	c.blockHolder(t, ns, "holder", "disk", b)
	loc := c.location(t)

	direct := "inuse-fs-" + randomSuffix()
	r := runPlugin(t, 2*time.Minute, append([]string{"create", direct, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "--volumes", "fs"}, moverArgs()...)...)
	if r.code != 2 || !strings.Contains(r.stdout, "raw block volume in use by pod holder") || !strings.Contains(r.stdout, "snapshot-move") {
		t.Errorf("--volumes=fs of a block claim in use: exit %d, want 2 naming the pod and snapshot-move\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	c.noLeftovers(t, direct)

	name := "inuse-" + randomSuffix()
	r = runPlugin(t, 3*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "-o", "json"}, moverArgs()...)...)
	var m catalog.Manifest
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil || len(m.Volumes) != 1 {
		t.Fatalf("create: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, c.Diagnose(ns))
	}
	if v := m.Volumes[0]; v.Mode != "snapshot-move" || v.Status != catalog.VolumeCompleted || v.MoverNode != b {
		t.Errorf("volume %+v, want snapshot-move Completed with its mover on %s", v, b)
	}
	c.noLeftovers(t, name)
}

// blockHolder starts a pod on node that maps claim's device and sleeps, and waits until it runs.
func (c *Cluster) blockHolder(t *testing.T, ns, name, claim, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
		TerminationGracePeriodSeconds: new(int64),
		Volumes:                       []corev1.Volume{{Name: "disk", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		Containers: []corev1.Container{{Name: "main", Image: c.Image, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
			VolumeDevices: []corev1.VolumeDevice{{Name: "disk", DevicePath: BlockDevice}}}},
	}}
	if _, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := c.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not running on %s: %v\n%s", ns, name, node, err, c.Diagnose(ns))
	}
}
