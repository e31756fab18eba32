//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// groupClaims creates bound csi-dir claims labelled pvbackup.io/volume-group=db (labelled at
// creation: see TestGroupBackup).
func (c *Cluster) groupClaims(t *testing.T, ns string, names ...string) {
	t.Helper()
	c.groupClaimsOf(t, ns, c.StorageClass, names...)
	for _, n := range names {
		c.waitBound(t, ns, n)
	}
}

// groupClaimsOf creates claims of class labelled pvbackup.io/volume-group=db.
func (c *Cluster) groupClaimsOf(t *testing.T, ns, class string, names ...string) {
	t.Helper()
	c.claimsOf(t, ns, class, map[string]string{volumes.LabelVolumeGroup: "db"}, names...)
}

// claimsOf creates 16 MiB claims of class with labels.
func (c *Cluster) claimsOf(t *testing.T, ns, class string, labels map[string]string, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range names {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &class,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}}},
		}
		if _, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create PVC %s/%s: %v", ns, n, err)
		}
	}
}

// TestGroupBrokenClass: a VolumeGroupSnapshotClass whose groups the driver fails (named with
// --volume-group-snapshot-class) fails the group's volumes in seconds with the driver's reason,
// and leaves nothing behind; an unknown class name is refused before anything is created.
func TestGroupBrokenClass(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-group-broken")
	c.groupClaims(t, ns, "one", "two")
	loc := c.location(t)
	name := "group-broken-" + randomSuffix()
	r := runPlugin(t, 3*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
		"--volumes", "snapshot-move", "--volume-group-snapshot-class", "csi-dir-fail"}, moverArgs()...)...)
	if r.code != 2 || !strings.Contains(r.stdout, "makes every group snapshot fail") || r.took > 40*time.Second {
		t.Errorf("failing group class: exit %d in %s (want 2 within 40s, naming the driver's reason)\n%s\n%s", r.code, r.took, r.stdout, r.stderr)
	}
	c.noLeftovers(t, name)
	c.noGroupSnapshots(t, ns)

	r = runPlugin(t, time.Minute, append([]string{"create", "group-typo-" + randomSuffix(), "--to", loc, "--include-namespaces", ns,
		"--volume-group-snapshot-class", "csi-dir-typo"}, moverArgs()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "--volume-group-snapshot-class csi-dir-typo: no such VolumeGroupSnapshotClass") {
		t.Errorf("unknown group class: exit %d, want it refused\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestGroupKilledCleanup: the plugin is killed (SIGKILL) once its first VolumeGroupSnapshot
// exists — with --volume-groups=auto, that of the namespace's claims without a group label
// ("auto:..." sorts before the labelled group), which the run labelled for the cut; `cleanup`
// then leaves nothing: no group snapshot, member snapshot, temporary claim, Job or Secret, and
// no claim with the run's label (the claims' own labels kept).
func TestGroupKilledCleanup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-group-kill")
	c.groupClaimsOf(t, ns, c.StorageClass, "one", "two")
	c.claimsOf(t, ns, c.StorageClass, map[string]string{"app": "shop"}, "three", "four")
	for _, n := range []string{"one", "two", "three", "four"} {
		c.waitBound(t, ns, n)
	}
	loc := c.location(t)
	name := "group-killed-" + randomSuffix()
	cmd := exec.Command(plugin(t), append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
		"--volumes", "snapshot-move", "--volume-groups", "auto"}, moverArgs()...)...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	groups := dynamicClient(t).Resource(GroupSnapshots).Namespace(ns)
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := groups.List(ctx, metav1.ListOptions{LabelSelector: volumes.Selector(name)})
		return err == nil && len(l.Items) == 1, nil
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err != nil {
		t.Fatalf("no VolumeGroupSnapshot appeared: %v\n%s", err, errb.String())
	}
	if l := c.groupRunLabelled(t, ns); len(l) != 2 {
		t.Errorf("claims labelled %s at the kill: %v, want three and four", volumes.LabelGroupRun, l)
	}
	r := runPlugin(t, 2*time.Minute, "cleanup", "--backup", name)
	if r.code != 0 || !strings.Contains(r.stdout, "VolumeGroupSnapshot") || !strings.Contains(r.stdout, "Removed label "+volumes.LabelGroupRun) {
		t.Errorf("cleanup: exit %d, want it to delete the VolumeGroupSnapshot and remove the run's label\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if l := c.groupRunLabelled(t, ns); len(l) != 0 {
		t.Errorf("claims still labelled %s after cleanup: %v", volumes.LabelGroupRun, l)
	}
	for n, want := range map[string]string{"one": volumes.LabelVolumeGroup + "=db", "three": "app=shop"} {
		pvc, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, n, metav1.GetOptions{})
		if k, v, _ := strings.Cut(want, "="); err != nil || pvc.Labels[k] != v {
			t.Errorf("PVC %s: labels %v (%v), want %s kept", n, pvc.Labels, err, want)
		}
	}
	c.noLeftovers(t, name)
	c.noGroupSnapshots(t, ns)
	// The group's member snapshots (not labelled by the plugin) go with it.
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		l, _ := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(context.Background(), metav1.ListOptions{})
		t.Errorf("VolumeSnapshots left in %s after cleanup: %d", ns, len(l.Items))
	}
}

// groupRunLabelled lists the claims of ns that carry the label of an automatic group's cut.
func (c *Cluster) groupRunLabelled(t *testing.T, ns string) []string {
	t.Helper()
	l, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{LabelSelector: volumes.LabelGroupRun})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name+"="+p.Labels[volumes.LabelGroupRun])
	}
	return out
}

// TestGroupAuto: with --volume-groups=auto, two claims without a group label are cut with one
// VolumeGroupSnapshot (their namespace's and driver's group), labelled for the cut only;
// backup.json says per volume which group and why.
func TestGroupAuto(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-group-auto")
	c.claimsOf(t, ns, c.StorageClass, map[string]string{"app": "shop"}, "one", "two")
	c.waitBound(t, ns, "one")
	c.waitBound(t, ns, "two")
	loc := c.location(t)
	name := "group-auto-" + randomSuffix()
	r := runPlugin(t, 3*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
		"--volumes", "snapshot-move", "--volume-groups", "auto", "-o", "json"}, moverArgs()...)...)
	var m catalog.Manifest
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil || len(m.Volumes) != 2 {
		t.Fatalf("create: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, c.Diagnose(ns))
	}
	group := m.Volumes[0].GroupSnapshot
	for _, v := range m.Volumes {
		if v.Status != catalog.VolumeCompleted || v.GroupSnapshot == "" || v.GroupSnapshot != group || v.VolumeGroup != ns+"/auto:dir.csi.pvbackup.io" ||
			!strings.Contains(v.Reason, "--volume-groups=auto: the selected claims of CSI driver dir.csi.pvbackup.io in namespace "+ns+" without a group label") {
			t.Errorf("volume %s: %s, group %q (%s), reason %q; want it Completed, cut with the namespace's automatic group", v.PVC, v.Status, v.VolumeGroup, v.GroupSnapshot, v.Reason)
		}
	}
	if l := c.groupRunLabelled(t, ns); len(l) != 0 {
		t.Errorf("claims still labelled %s after the backup: %v", volumes.LabelGroupRun, l)
	}
	c.noLeftovers(t, name)
	c.noGroupSnapshots(t, ns)
}

// TestGroupClasslessFallback: claims of a group whose driver (csi-local) has no
// VolumeGroupSnapshotClass are snapshotted one by one, each with a warning saying why, and
// backed up.
func TestGroupClasslessFallback(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	local := os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	if local == "" {
		t.Fatal("PVBACKUP_LOCAL_STORAGE_CLASS is not set: a cluster from hack/cluster.sh up has it")
	}
	ns := c.Namespace(t, "e2e-group-classless")
	_, b, _ := labNodes(t)
	c.groupClaimsOf(t, ns, local, "one", "two")
	// WaitForFirstConsumer: a Job on node b binds both.
	c.runJob(t, ns, "bind", "", 2*time.Minute, func(p *corev1.PodSpec) {
		onNode(b)(p)
		for _, n := range []string{"one", "two"} {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: n, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: n}}})
			p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: n, MountPath: "/" + n})
		}
	}, []string{"sh", "-c", "echo 1 > /one/n && echo 1 > /two/n"})
	c.waitBound(t, ns, "one")
	c.waitBound(t, ns, "two")
	loc := c.location(t)
	name := "classless-" + randomSuffix()
	r := runPlugin(t, 3*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "-o", "json"}, moverArgs()...)...)
	var m catalog.Manifest
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil || len(m.Volumes) != 2 {
		t.Fatalf("create: exit %d\n%s\n%s\n%s", r.code, r.stdout, r.stderr, c.Diagnose(ns))
	}
	for _, v := range m.Volumes {
		if v.Status != catalog.VolumeCompleted || v.GroupSnapshot != "" || !strings.Contains(strings.Join(v.Warnings, "|"), "snapshotted alone, not at one instant with the group: CSI driver") ||
			!strings.Contains(strings.Join(v.Warnings, "|"), "has no VolumeGroupSnapshotClass") {
			t.Errorf("volume %s: %s, group %q, warnings %q; want it Completed, cut alone with the warning", v.PVC, v.Status, v.GroupSnapshot, v.Warnings)
		}
	}
	c.noLeftovers(t, name)
}
