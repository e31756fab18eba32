//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// TestGroupBackup: two claims labelled pvbackup.io/volume-group=db that a lockstep writer keeps
// appending to are cut with one VolumeGroupSnapshot and moved; restored into a new namespace,
// they hold numbers the writer had at one instant. The writer's hooks run once around the cut.
// The group snapshot is gone afterwards.
// (TestLabGroupSnapshot shows single snapshots cut one after the other do not.)
func TestGroupBackup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-group")
	for _, claim := range []string{"one", "two"} {
		// Labelled at creation: a label added while the provisioner binds the claim makes it log a
		// conflict (ProvisioningFailed), which the snapshot waits would take for a failure.
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim, Labels: map[string]string{volumes.LabelVolumeGroup: "db"}},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &c.StorageClass,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}}},
		}
		if _, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create PVC %s/%s: %v", ns, claim, err)
		}
	}
	c.StartLockstepWriter(t, ns, "writer", "one", "two")
	c.waitLiveNumber(t, ns, "writer", "two", 100)

	loc := c.location(t)
	name := "group-" + randomSuffix()
	// With hooks in the writer's pod: they run once around the group's cut (not a window per claim).
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns,
		"--include-resources", "persistentvolumeclaims", "-o", "json", "--pre-hook", "echo frozen", "--post-hook", "echo thawed"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, r.stdout)
	}
	group := ""
	for _, v := range m.Volumes {
		if v.Status != catalog.VolumeCompleted || v.Mode != "snapshot-move" || v.GroupSnapshot == "" || v.VolumeGroup != ns+"/"+volumes.LabelVolumeGroup+"=db" {
			t.Errorf("volume %s: %+v, want it Completed, cut with its group", v.PVC, v)
		}
		if len(v.Hooks) != 2 || !strings.Contains(v.Hooks[0], "pre hook in pod writer") || !strings.Contains(v.Hooks[1], "post hook in pod writer") {
			t.Errorf("volume %s: hooks %q, want the writer's pre and post hook once around the group cut", v.PVC, v.Hooks)
		}
		if group != "" && v.GroupSnapshot != group {
			t.Errorf("volumes cut by different group snapshots %s and %s", group, v.GroupSnapshot)
		}
		group = v.GroupSnapshot
	}
	c.noLeftovers(t, name)
	c.noGroupSnapshots(t, ns)

	copyNS := ns + "-copy"
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + copyNS}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("restore into %s: exit %d\n%s\n%s", copyNS, r.code, r.stdout, c.Diagnose(copyNS))
	}
	n := c.LockstepNumbers(t, copyNS, "read", "one", "two")
	t.Logf("restored from the group backup: %v", n)
	if err := CheckLockstep(n...); err != nil {
		t.Errorf("claims restored from the group backup: %v", err)
	}
}

// noGroupSnapshots waits until namespace ns holds no VolumeGroupSnapshot (their deletion
// finishes after the controller's finalizers).
func (c *Cluster) noGroupSnapshots(t *testing.T, ns string) {
	t.Helper()
	res := dynamicClient(t).Resource(GroupSnapshots).Namespace(ns)
	var left []string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := res.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		left = left[:0]
		for _, u := range list.Items {
			left = append(left, u.GetName())
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Errorf("VolumeGroupSnapshots left in %s: %s (%v)", ns, strings.Join(left, ", "), err)
	}
}
