//go:build integration

package volumes_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

// On a real apiserver + controller-manager (no scheduler, no kubelet): the waits see real events
// (the Job controller's FailedCreate), real stalls (a pod nobody schedules), and cleanup leaves
// nothing whatever way a volume ends.
func TestVolumesOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	snap := snapclient.NewForConfigOrDie(cp.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	newNS := func(name string) {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	boundClaim := func(ns, name string) *corev1.PersistentVolumeClaim {
		pvName := ns + "-" + name
		_, err := kube.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: pvName},
			Spec: corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + pvName}},
				ClaimRef:               &corev1.ObjectReference{Namespace: ns, Name: name}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		empty := ""
		_, err = kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pvName, StorageClassName: &empty, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var c *corev1.PersistentVolumeClaim
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			c, err = kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && c.Status.Phase == corev1.ClaimBound, nil
		})
		if err != nil {
			t.Fatalf("claim %s/%s not bound by the PV controller: %v", ns, name, err)
		}
		return c
	}
	deps := volumes.Deps{Kube: kube, Snap: snap, Discovery: kube.Discovery()}
	cfg := func(backup string, mode volumes.Mode) volumes.Config {
		return volumes.Config{Backup: backup, Mode: mode, Timeout: 3 * time.Second,
			Mover: volumes.MoverConfig{Image: "mover:it", Location: "s3://bucket/p", RepoPassword: func(ns string) (string, error) { return "key-of-" + ns, nil }, Env: map[string]string{"AWS_ACCESS_KEY_ID": "x"}}}
	}
	// A pod the Job controller created from a stale cache just as the Job was deleted is the
	// garbage collector's, within seconds (its owner is gone): wait for that, not for ever.
	noLeftovers := func(backup string) {
		t.Helper()
		var objs []volumes.Object
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			objs, err = volumes.Leftovers(ctx, kube, snap, backup)
			return err == nil && len(objs) == 0, err
		})
		if len(objs) > 0 || err != nil {
			t.Errorf("%s left %v (%v)", backup, objs, err)
		}
	}

	t.Run("stalled mover fails with the last thing seen", func(t *testing.T) {
		newNS("stall")
		c := boundClaim("stall", "data")
		start := time.Now()
		vols, err := volumes.Backup(ctx, deps, cfg("stall", volumes.ModeAuto), []*corev1.PersistentVolumeClaim{c})
		if err != nil {
			t.Fatal(err)
		}
		v := vols[0]
		if v.Mode != "fs" || v.Reason != "not a CSI volume" {
			t.Errorf("auto chose %s (%s)", v.Mode, v.Reason)
		}
		if v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "no progress for 3s; last seen: ") || !strings.Contains(v.Error, "pod pvb-b-stall-data-") && !strings.Contains(v.Error, "Created pod: pvb-b-stall-data-") {
			t.Errorf("%s %q", v.Status, v.Error)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("took %s", d)
		}
		noLeftovers("stall")
	})

	t.Run("dry run prints each volume's mode and reason", func(t *testing.T) {
		var out, errOut bytes.Buffer
		root := cli.NewRootCmd(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		root.SetArgs([]string{"--kubeconfig", cp.Kubeconfig, "create", "plan", "--include-namespaces", "stall", "--dry-run"})
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		if !regexp.MustCompile(`(?m)^VOLUME\s+SIZE\s+MODE\s+REASON\n^stall/data\s+1Gi\s+fs\s+not a CSI volume$`).MatchString(out.String()) {
			t.Errorf("plan:\n%s", out.String())
		}
		noLeftovers("plan")
	})

	t.Run("quota refusal fails at once with the Job's event", func(t *testing.T) {
		newNS("quota")
		c := boundClaim("quota", "data")
		if _, err := kube.CoreV1().ResourceQuotas("quota").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Admission judges a quota by its status, which the quota controller fills: until then it
		// admits pods (a CI run on a loaded machine saw the Job's pod created).
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			q, err := kube.CoreV1().ResourceQuotas("quota").Get(ctx, "no-pods", metav1.GetOptions{})
			return err == nil && len(q.Status.Hard) > 0, nil
		}); err != nil {
			t.Fatalf("the quota controller did not compute quota/no-pods: %v", err)
		}
		c2 := cfg("quota", volumes.ModeFS)
		c2.Timeout = time.Minute
		start := time.Now()
		vols, err := volumes.Backup(ctx, deps, c2, []*corev1.PersistentVolumeClaim{c})
		if err != nil {
			t.Fatal(err)
		}
		if v := vols[0]; v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "FailedCreate") || !strings.Contains(v.Error, "exceeded quota: no-pods") {
			t.Errorf("%s %q", v.Status, v.Error)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %s: the event should end the wait", d)
		}
		noLeftovers("quota")
	})

	t.Run("no snapshot API: snapshot-move fails before creating anything", func(t *testing.T) {
		newNS("nosnap")
		c := boundClaim("nosnap", "data")
		c.Spec.VolumeName = "csi-pv"
		_, err := kube.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "csi-pv"},
			Spec: corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "x.csi", VolumeHandle: "h"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vols, err := volumes.Backup(ctx, deps, cfg("nosnap", volumes.ModeSnapshotMove), []*corev1.PersistentVolumeClaim{c})
		if err != nil {
			t.Fatal(err)
		}
		if v := vols[0]; v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "no VolumeSnapshot API") || v.Seconds != 0 {
			t.Errorf("%s %q", v.Status, v.Error)
		}
		plan, err := volumes.Plan(ctx, deps, cfg("nosnap", volumes.ModeAuto), []*corev1.PersistentVolumeClaim{c})
		if err != nil || plan[0].Mode != "fs" || !strings.Contains(plan[0].Reason, "no VolumeSnapshot API") {
			t.Errorf("auto plan: %+v %v", plan, err)
		}
		noLeftovers("nosnap")
	})
}

// cleanup's label removal on a real apiserver: a JSON patch that tests the value first removes
// pvbackup.io/group-run and nothing else, and leaves a label whose value changed since it was
// listed (another run's) without an error.
func TestUnlabelOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := func(name string, labels map[string]string) {
		_, err := kube.CoreV1().PersistentVolumeClaims("app").Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mine, other := volumes.AutoGroupValue("b1", "r0001", "dir.csi"), volumes.AutoGroupValue("b1", "r0002", "dir.csi")
	claim("one", map[string]string{volumes.LabelGroupRun: mine, "app": "shop"})
	claim("two", map[string]string{volumes.LabelGroupRun: mine})
	listed, err := volumes.LabelledClaims(ctx, kube, "b1")
	if err != nil || len(listed) != 2 {
		t.Fatalf("listed %v, %v", listed, err)
	}
	// Another run labels "two" between the list and the removal.
	patch := []byte(`{"metadata":{"labels":{"` + volumes.LabelGroupRun + `":"` + other + `"}}}`)
	if _, err := kube.CoreV1().PersistentVolumeClaims("app").Patch(ctx, "two", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := volumes.Unlabel(ctx, kube, listed); err != nil {
		t.Fatalf("unlabel: %v", err)
	}
	for name, want := range map[string]map[string]string{"one": {"app": "shop"}, "two": {volumes.LabelGroupRun: other}} {
		c, err := kube.CoreV1().PersistentVolumeClaims("app").Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(c.Labels) != len(want) || c.Labels["app"] != want["app"] || c.Labels[volumes.LabelGroupRun] != want[volumes.LabelGroupRun] {
			t.Errorf("PVC %s: labels %v (%v), want %v", name, c.Labels, err, want)
		}
	}
}
