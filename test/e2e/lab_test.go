//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	"gocloud.dev/blob"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// The lab's own tests: the three nodes and their zones, pod networking from every node, and the
// volume types that behave as users' do (docs/local-cluster.md). The placement tests build on them.

// labNodes are the lab's nodes ($PVBACKUP_NODES): a in zone-a, b and c in zone-b.
func labNodes(t *testing.T) (a, b, c string) {
	t.Helper()
	n := strings.Fields(os.Getenv("PVBACKUP_NODES"))
	if len(n) != 3 {
		t.Fatalf("PVBACKUP_NODES = %q, want three nodes: a cluster from hack/cluster.sh up", os.Getenv("PVBACKUP_NODES"))
	}
	return n[0], n[1], n[2]
}

// onNode pins a pod to a node.
func onNode(node string) func(*corev1.PodSpec) {
	return func(p *corev1.PodSpec) { p.NodeSelector = map[string]string{"kubernetes.io/hostname": node} }
}

// classPVC creates a ReadWriteOnce claim of a StorageClass, optionally from a data source.
func (c *Cluster) classPVC(t *testing.T, ns, name, class string, source *corev1.TypedLocalObjectReference) {
	t.Helper()
	_, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}},
			DataSource:       source,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create PVC %s/%s: %v", ns, name, err)
	}
}

// waitEvent waits for an event about the named object whose message contains want.
func (c *Cluster) waitEvent(t *testing.T, ns, object, want string, timeout time.Duration) corev1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("involvedObject.name", object).String()
	lw := kube.ListWatch(c.Kube.CoreV1().Events(ns), c.Kube, func(o *metav1.ListOptions) { o.FieldSelector = sel })
	ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Event{}, nil, func(ev watch.Event) (bool, error) {
		e, ok := ev.Object.(*corev1.Event)
		return ok && strings.Contains(e.Message, want), nil
	})
	if err != nil {
		t.Fatalf("no event on %s/%s saying %q within %s: %v\n%s", ns, object, want, timeout, err, c.Diagnose(ns))
	}
	return *ev.Object.(*corev1.Event)
}

// pvOf is the PersistentVolume bound to a claim.
func (c *Cluster) pvOf(t *testing.T, ns, claim string) *corev1.PersistentVolume {
	t.Helper()
	ctx := context.Background()
	pvc, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil || pvc.Spec.VolumeName == "" {
		t.Fatalf("claim %s/%s: %v, bound to %q", ns, claim, err, pvc.Spec.VolumeName)
	}
	pv, err := c.Kube.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

// affinity is the one value of key in a PV's node affinity ("" if none).
func affinity(pv *corev1.PersistentVolume, key string) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == key && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	return ""
}

// TestLabNodes: three Ready nodes, one in zone-a and two in zone-b; a pod on each gets an address
// of its node's range and reaches the S3 store on the host.
func TestLabNodes(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	a, b, cc := labNodes(t)
	ctx := context.Background()
	bucket, err := blob.OpenBucket(ctx, c.S3URL)
	if err != nil {
		t.Fatalf("open %s: %v", c.S3URL, err)
	}
	t.Cleanup(func() { bucket.Close() })
	key, token := "e2e/lab-"+randomSuffix(), "lab-"+randomSuffix()
	if err := bucket.WriteAll(ctx, key, []byte(token), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Delete(context.Background(), key) })
	url, err := bucket.SignedURL(ctx, key, &blob.SignedURLOptions{Expiry: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace(t, "e2e-lab-nodes")
	for i, want := range []struct{ node, zone, prefix string }{{a, "zone-a", "10.244.0."}, {b, "zone-b", "10.244.1."}, {cc, "zone-b", "10.244.2."}} {
		node, err := c.Kube.CoreV1().Nodes().Get(ctx, want.node, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %s: %v", want.node, err)
		}
		if z := node.Labels["topology.kubernetes.io/zone"]; z != want.zone {
			t.Errorf("node %s is in zone %q, want %s", want.node, z, want.zone)
		}
		job := "fetch-" + string(rune('a'+i))
		if got := c.runJob(t, ns, job, "", 2*time.Minute, onNode(want.node), []string{"wget", "-q", "-O", "-", url}); got != token {
			t.Errorf("pod on %s fetched %q, want %q", want.node, got, token)
		}
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("pods of job %s: %v %d", job, err, len(pods.Items))
		}
		if p := pods.Items[0]; p.Spec.NodeName != want.node || !strings.HasPrefix(p.Status.PodIP, want.prefix) {
			t.Errorf("pod of job %s ran on %s with address %s, want %s and %s*", job, p.Spec.NodeName, p.Status.PodIP, want.node, want.prefix)
		}
	}
}

// TestLabZonalAttachesToOneNode: a csi-zonal claim binds in the zone of its first pod's node, is
// attached there (a VolumeAttachment answered by the driver's attacher), a pod on a second node
// gets the attach-detach controller's Multi-Attach error, and once the first pod is gone the
// volume is detached and attached to the second node, data intact.
func TestLabZonalAttachesToOneNode(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	_, b, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-lab-zonal")
	ctx := context.Background()
	token := "zonal-" + randomSuffix()
	c.classPVC(t, ns, "disk", os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), nil)
	c.runJob(t, ns, "writer", "disk", 2*time.Minute, onNode(b), []string{"sh", "-c", "echo " + token + " > /data/token && sync"})
	pv := c.pvOf(t, ns, "disk")
	if z := affinity(pv, "topology.zonal.csi.pvbackup.io/zone"); z != "zone-b" {
		t.Fatalf("volume %s has zone %q in its node affinity, want zone-b (its first pod ran on %s)", pv.Name, z, b)
	}

	holder := c.startPod(t, ns, "holder", "disk", b, "sleep", "3600")
	c.waitPod(t, ns, holder, 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	vas, err := c.Kube.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	attached := []string{}
	for _, va := range vas.Items {
		if va.Spec.Source.PersistentVolumeName != nil && *va.Spec.Source.PersistentVolumeName == pv.Name && va.Status.Attached {
			attached = append(attached, va.Spec.NodeName)
		}
	}
	if len(attached) != 1 || attached[0] != b {
		t.Fatalf("volume %s is attached to %v, want [%s]", pv.Name, attached, b)
	}

	intruder := c.startPod(t, ns, "intruder", "disk", cc, "cat", "/data/token")
	c.waitEvent(t, ns, intruder, "Multi-Attach error", time.Minute)
	if err := c.Kube.CoreV1().Pods(ns).Delete(ctx, holder, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	c.waitPod(t, ns, intruder, 3*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if got := strings.TrimSpace(c.podLogs(t, ns, intruder)); got != token {
		t.Errorf("pod on %s read %q after the volume moved, want %q", cc, got, token)
	}
}

// TestLabLocalSnapshotStaysOnItsNode: a csi-local claim lives on its first pod's node; a claim
// from its snapshot is provisioned on that node, and for a pod pinned to another node it is
// refused with the reason.
func TestLabLocalSnapshotStaysOnItsNode(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	_, b, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-lab-local")
	token := "local-" + randomSuffix()
	local := os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	c.classPVC(t, ns, "data", local, nil)
	c.runJob(t, ns, "writer", "data", 2*time.Minute, onNode(cc), []string{"sh", "-c", "echo " + token + " > /data/token && sync"})
	if n := affinity(c.pvOf(t, ns, "data"), "topology.local.csi.pvbackup.io/node"); n != cc {
		t.Fatalf("the local volume is on node %q, want %s", n, cc)
	}
	c.Snapshot(t, ns, "snap", "data", local)
	c.WaitSnapshot(t, ns, "snap", 2*time.Minute, func(s *snapv1.VolumeSnapshot) bool {
		return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	})
	group := snapv1.GroupName
	src := &corev1.TypedLocalObjectReference{APIGroup: &group, Kind: "VolumeSnapshot", Name: "snap"}
	c.classPVC(t, ns, "here", local, src)
	if got := c.runJob(t, ns, "reader", "here", 2*time.Minute, onNode(cc), []string{"cat", "/data/token"}); strings.TrimSpace(got) != token {
		t.Errorf("claim from the snapshot on %s holds %q, want %q", cc, got, token)
	}
	c.classPVC(t, ns, "elsewhere", local, src)
	c.startPod(t, ns, "elsewhere", "elsewhere", b, "true")
	c.waitEvent(t, ns, "elsewhere", "exists on node "+cc+" only", 2*time.Minute)

	// The snapshot-controller keeps a VolumeSnapshot while a claim restored from it is unbound
	// (SnapshotDeletePending) and retries with a backoff that grows to minutes: the refused claim
	// goes first, then the snapshot, so the namespace goes at once.
	ctx := context.Background()
	if err := c.Kube.CoreV1().Pods(ns).Delete(ctx, "elsewhere", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "elsewhere", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, kube.ListWatch(c.Kube.CoreV1().PersistentVolumeClaims(ns), c.Kube, kube.Named("elsewhere")), &corev1.PersistentVolumeClaim{}, ns+"/elsewhere")
	if err := c.Snap.SnapshotV1().VolumeSnapshots(ns).Delete(ctx, "snap", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, kube.ListWatch(c.Snap.SnapshotV1().VolumeSnapshots(ns), c.Snap, kube.Named("snap")), &snapv1.VolumeSnapshot{}, ns+"/snap")
}

// waitGone waits up to 2 minutes until the one object lw lists is gone.
func waitGone(t *testing.T, lw cache.ListerWatcher, obj runtime.Object, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := watchtools.UntilWithSync(ctx, lw, obj, func(store cache.Store) (bool, error) {
		return len(store.List()) == 0, nil
	}, func(ev watch.Event) (bool, error) { return ev.Type == watch.Deleted, nil })
	if err != nil {
		t.Fatalf("%s was not deleted within 2 minutes: %v", what, err)
	}
}

// startPod starts a pod on a node that mounts a claim at /data and runs command.
func (c *Cluster) startPod(t *testing.T, ns, name, claim, node string, command ...string) string {
	t.Helper()
	spec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{Name: "main", Image: c.Image, ImagePullPolicy: corev1.PullNever, Command: command,
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
	}
	onNode(node)(&spec)
	if _, err := c.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return name
}

// waitPod watches a pod until cond holds.
func (c *Cluster) waitPod(t *testing.T, ns, name string, timeout time.Duration, cond func(*corev1.Pod) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(c.Kube.CoreV1().Pods(ns), c.Kube, kube.Named(name))
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		return ok && cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: condition not met within %s: %v\n%s", ns, name, timeout, err, c.Diagnose(ns))
	}
}

func (c *Cluster) podLogs(t *testing.T, ns, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.Kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of pod %s/%s: %v", ns, name, err)
	}
	return string(b)
}
