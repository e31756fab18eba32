//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
)

// Group snapshots of the lab (docs/local-cluster.md, "Group snapshots"): VolumeGroupSnapshots
// (groupsnapshot.storage.k8s.io/v1beta2) of csi-dir and csi-zonal claims, cut while the pods using
// them are frozen, and the lockstep writer that shows what that buys.

// GroupSnapshots is the v1beta2 VolumeGroupSnapshot resource, the version the lab serves.
var GroupSnapshots = schema.GroupVersionResource{Group: "groupsnapshot.storage.k8s.io", Version: "v1beta2", Resource: "volumegroupsnapshots"}

// dynamicClient is a dynamic client of the cluster (the typed snapshot client, client/v6, has no
// group snapshot types).
func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	return dynamic.NewForConfigOrDie(cfg)
}

// GroupSnapshot creates a VolumeGroupSnapshot of the claims of ns labelled with labels, with a
// VolumeGroupSnapshotClass.
func (c *Cluster) GroupSnapshot(t *testing.T, ns, name, class string, labels map[string]string) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "groupsnapshot.storage.k8s.io/v1beta2", "kind": "VolumeGroupSnapshot",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"volumeGroupSnapshotClassName": class,
			"source": map[string]any{"selector": map[string]any{"matchLabels": toAny(labels)}}},
	}}
	if _, err := dynamicClient(t).Resource(GroupSnapshots).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create volumegroupsnapshot %s/%s: %v", ns, name, err)
	}
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WaitGroupSnapshot watches a VolumeGroupSnapshot until it is ready to use and returns it; its
// status.error fails the test at once with the reason.
func (c *Cluster) WaitGroupSnapshot(t *testing.T, ns, name string, timeout time.Duration) *unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(dynamicClient(t).Resource(GroupSnapshots).Namespace(ns), c.Kube, kube.Named(name))
	// status.error is not final: the snapshot-controller writes a failed status update there (an
	// API conflict under load, as in a CI run) and retries; the group becomes ready after it.
	var lastErr string
	ev, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		if msg, _, _ := unstructured.NestedString(u.Object, "status", "error", "message"); msg != "" {
			lastErr = msg
		}
		ready, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse")
		return ready, nil
	})
	if err != nil {
		t.Fatalf("volumegroupsnapshot %s/%s not ready within %s (last error: %q): %v\n%s", ns, name, timeout, lastErr, err, c.Diagnose(ns))
	}
	if lastErr != "" {
		t.Logf("volumegroupsnapshot %s/%s ready after a transient error: %s", ns, name, lastErr)
	}
	return ev.Object.(*unstructured.Unstructured)
}

// GroupMembers maps each claim cut in a ready VolumeGroupSnapshot to its member VolumeSnapshot:
// the snapshot-controller makes one per claim in the group's namespace, owned by the group and
// naming the claim in spec.source.persistentVolumeClaimName.
func (c *Cluster) GroupMembers(t *testing.T, ns string, group *unstructured.Unstructured) map[string]string {
	t.Helper()
	list, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]string{}
	for _, s := range list.Items {
		for _, o := range s.OwnerReferences {
			if o.UID == types.UID(group.GetUID()) && s.Spec.Source.PersistentVolumeClaimName != nil {
				members[*s.Spec.Source.PersistentVolumeClaimName] = s.Name
			}
		}
	}
	return members
}

// LockstepScript is the lockstep writer: it writes 1, 2, 3, ... as fast as it can, each number
// appended as a line to each file in turn. Every state it passes through has the files' last
// numbers equal, or each one less than the one before it (the writer is between two appends) —
// see CheckLockstep.
func LockstepScript(files ...string) string {
	var b strings.Builder
	b.WriteString("i=0; while :; do i=$((i+1))")
	for _, f := range files {
		fmt.Fprintf(&b, "; echo $i >> %s", f)
	}
	b.WriteString("; done")
	return b.String()
}

// CheckLockstep says whether last numbers read from copies of the lockstep writer's files (in
// the order the writer appends to them) are a state the writer passed through: all equal, or
// n, ..., n, n-1, ..., n-1. Copies cut at one point in time always are; copies cut one after the
// other are not, once the writer moved on between the cuts.
func CheckLockstep(last ...int) error {
	for i := 1; i < len(last); i++ {
		if d := last[i-1] - last[i]; d != 0 && d != 1 || d == 1 && last[0] != last[i-1] {
			return fmt.Errorf("last numbers %v: no instant had them (the writer appends to each file in turn, so they are all n, or n then n-1)", last)
		}
	}
	return nil
}

// StartLockstepWriter starts a pod that mounts each claim at /data/<claim> and runs LockstepScript
// on /data/<claim>/seq, in the order given; it waits until the pod runs.
func (c *Cluster) StartLockstepWriter(t *testing.T, ns, name string, claims ...string) {
	t.Helper()
	spec := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To(int64(0)),
		Containers: []corev1.Container{{Name: "writer", Image: c.Image, ImagePullPolicy: corev1.PullNever}}}
	var files []string
	for _, claim := range claims {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "v-" + claim, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "v-" + claim, MountPath: "/data/" + claim})
		files = append(files, "/data/"+claim+"/seq")
	}
	spec.Containers[0].Command = []string{"sh", "-c", LockstepScript(files...)}
	if _, err := c.Kube.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	c.waitPod(t, ns, name, 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
}

// lastLine prints the last complete line of file f (a line being appended has no newline yet).
func lastLine(f string) string {
	return fmt.Sprintf(`if [ -z "$(tail -c 1 %[1]s)" ]; then tail -n 1 %[1]s; else tail -n 2 %[1]s | head -n 1; fi`, f)
}

// LiveNumber is the last number the lockstep writer pod appended to a claim's file (kubectl exec).
func (c *Cluster) LiveNumber(t *testing.T, ns, pod, claim string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env(t, "PVBACKUP_KUBECTL"), "exec", "-n", ns, pod, "--", "sh", "-c", lastLine("/data/"+claim+"/seq"))
	out, err := cmd.CombinedOutput()
	n, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		t.Fatalf("read the writer's number in %s/%s (%s): %v %v: %s", ns, pod, claim, err, perr, out)
	}
	return n
}

// waitLiveNumber waits until the writer's last number on claim exceeds n.
func (c *Cluster) waitLiveNumber(t *testing.T, ns, pod, claim string, n int) int {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if got := c.LiveNumber(t, ns, pod, claim); got > n {
			return got
		}
	}
	t.Fatalf("the writer %s/%s did not pass %d on %s within a minute", ns, pod, n, claim)
	return 0
}

// LockstepNumbers runs one Job that mounts every claim (copies of the writer's claims) and
// returns the last complete number of each claim's seq file, in the order given.
func (c *Cluster) LockstepNumbers(t *testing.T, ns, job string, claims ...string) []int {
	t.Helper()
	script := `for c in ` + strings.Join(claims, " ") + `; do ` + lastLine("/data/$c/seq") + `; done`
	out := strings.Fields(c.onClaims(t, ns, job, claims, script))
	if len(out) != len(claims) {
		t.Fatalf("job %s/%s printed %q, want one number per claim %v", ns, job, out, claims)
	}
	nums := make([]int, len(out))
	for i, s := range out {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("job %s/%s printed %q for %s: %v", ns, job, s, claims[i], err)
		}
		nums[i] = n
	}
	return nums
}

// TestLabGroupSnapshot: a VolumeGroupSnapshot of two csi-dir claims that a lockstep writer keeps
// appending to becomes ready, with a member VolumeSnapshot per claim; claims restored from the
// members hold numbers the writer had at one instant. Two single VolumeSnapshots of the same
// claims, cut one after the other, restore numbers no instant had.
func TestLabGroupSnapshot(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-lab-group")
	group := map[string]string{"pvbackup.io/e2e-group": "lockstep"}
	for _, claim := range []string{"one", "two"} {
		c.classPVC(t, ns, claim, c.StorageClass, nil)
		c.labelPVC(t, ns, claim, group)
	}
	c.StartLockstepWriter(t, ns, "writer", "one", "two")
	c.waitLiveNumber(t, ns, "writer", "two", 100)

	start := time.Now()
	c.GroupSnapshot(t, ns, "cut", os.Getenv("PVBACKUP_GROUP_SNAPSHOT_CLASS"), group)
	vgs := c.WaitGroupSnapshot(t, ns, "cut", 2*time.Minute)
	members := c.GroupMembers(t, ns, vgs)
	t.Logf("group snapshot ready in %s, members %v", time.Since(start).Round(time.Millisecond), members)
	if len(members) != 2 || members["one"] == "" || members["two"] == "" {
		t.Fatalf("group snapshot members %v, want one VolumeSnapshot for each of one and two", members)
	}
	ready := func(s *snapv1.VolumeSnapshot) bool {
		return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	}
	for _, claim := range []string{"one", "two"} {
		c.WaitSnapshot(t, ns, members[claim], time.Minute, ready)
		c.classPVC(t, ns, "group-"+claim, c.StorageClass, snapshotSource(members[claim]))
	}

	// Single snapshots: two cut only after the writer passed the first one's number on claim two.
	c.Snapshot(t, ns, "alone-one", "one", c.SnapshotClass)
	c.WaitSnapshot(t, ns, "alone-one", time.Minute, ready)
	c.waitLiveNumber(t, ns, "writer", "two", c.LiveNumber(t, ns, "writer", "one"))
	c.Snapshot(t, ns, "alone-two", "two", c.SnapshotClass)
	c.WaitSnapshot(t, ns, "alone-two", time.Minute, ready)
	for _, claim := range []string{"one", "two"} {
		c.classPVC(t, ns, "alone-"+claim, c.StorageClass, snapshotSource("alone-"+claim))
	}

	n := c.LockstepNumbers(t, ns, "read", "group-one", "group-two", "alone-one", "alone-two")
	t.Logf("group cut: %v; single snapshots one after the other: %v", n[:2], n[2:])
	if err := CheckLockstep(n[0], n[1]); err != nil {
		t.Errorf("claims restored from the group snapshot: %v", err)
	}
	if CheckLockstep(n[2], n[3]) == nil {
		t.Errorf("claims restored from single snapshots cut one after the other hold %v, a state the writer had: want it to have moved on between the cuts", n[2:])
	}
}

// CheckLockstep accepts exactly the states the writer passes through.
func TestCheckLockstep(t *testing.T) {
	for _, c := range []struct {
		last []int
		ok   bool
	}{{[]int{5, 5}, true}, {[]int{5, 4}, true}, {[]int{4, 5}, false}, {[]int{6, 4}, false},
		{[]int{5, 5, 4}, true}, {[]int{5, 4, 4}, true}, {[]int{5, 4, 3}, false}, {[]int{5, 4, 5}, false}} {
		if err := CheckLockstep(c.last...); (err == nil) != c.ok {
			t.Errorf("CheckLockstep(%v) = %v, want ok=%v", c.last, err, c.ok)
		}
	}
}

// labelPVC adds labels to a claim.
func (c *Cluster) labelPVC(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	// A merge patch: the provisioner updates the claim while it binds, so an Update of what was
	// read a moment before may conflict.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("label claim %s/%s: %v", ns, name, err)
	}
}
