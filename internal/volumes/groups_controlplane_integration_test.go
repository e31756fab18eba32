//go:build integration

package volumes_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
	pvbkube "github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

// On a real apiserver that serves the VolumeSnapshot API but no VolumeGroupSnapshot one (an
// external-snapshotter before v8, or its group CRDs not installed): claims labelled into a volume
// group are cut one by one, each with its own VolumeSnapshot; the dry run and the result say
// why, per volume, and warn; nothing fails for it. The test plays the snapshot controller (each
// VolumeSnapshot ready) and the kubelet (each mover pod succeeds): the control plane has neither.
func TestGroupsWithoutGroupAPIOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	snap := snapclient.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	var players sync.WaitGroup
	defer players.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel() // first: the players stop

	installSnapshotCRDs(ctx, t, dyn, kube)
	if v, err := volumes.GroupSnapshotVersion(kube.Discovery()); err != nil || v != "" {
		t.Fatalf("group snapshot version %q, %v; want none served", v, err)
	}
	if _, err := snap.SnapshotV1().VolumeSnapshotClasses().Create(ctx, &snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "dir",
		Annotations: map[string]string{volumes.AnnotationDefaultClass: "true"}},
		Driver: "dir.csi", DeletionPolicy: snapv1.VolumeSnapshotContentDelete}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claims := []*corev1.PersistentVolumeClaim{csiClaim(ctx, t, kube, "db", "data"), csiClaim(ctx, t, kube, "db", "wal")}
	cuts := make(chan string, 16) // the claims a VolumeSnapshot was made of
	players.Go(func() { playSnapshotController(ctx, t, snap, "db", cuts) })
	players.Go(func() { playKubelet(ctx, t, kube, "db") })

	t.Run("dry run: each grouped claim cut alone, the reason and a warning", func(t *testing.T) {
		var out, errOut bytes.Buffer
		root := cli.NewRootCmd(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		root.SetArgs([]string{"--kubeconfig", cp.Kubeconfig, "create", "plan", "--include-namespaces", "db", "--volumes", "snapshot-move", "--dry-run"})
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		for _, pvc := range []string{"data", "wal"} {
			want := "db/" + pvc + " "
			line := lineWith(out.String(), want)
			if !strings.Contains(line, "snapshot-move") || !strings.Contains(line, "cut alone, not with group db/"+volumes.LabelVolumeGroup+"=pg: the cluster serves no VolumeGroupSnapshot API") {
				t.Errorf("plan line of %s: %q\n%s", pvc, line, out.String())
			}
			if !strings.Contains(errOut.String(), "PVC db/"+pvc+" of volume group db/"+volumes.LabelVolumeGroup+"=pg is snapshotted alone") {
				t.Errorf("no warning for %s:\n%s", pvc, errOut.String())
			}
		}
	})

	t.Run("backup: one VolumeSnapshot per claim, completed", func(t *testing.T) {
		cfg := volumes.Config{Backup: "nogroups", Mode: volumes.ModeSnapshotMove, Timeout: time.Minute,
			Mover: volumes.MoverConfig{Image: "mover:it", Location: "s3://bucket/p", RepoPassword: func(ns string) (string, error) { return "key-of-" + ns, nil }, Env: map[string]string{"AWS_ACCESS_KEY_ID": "x"}}}
		vols, err := volumes.Backup(ctx, volumes.Deps{Kube: kube, Snap: snap, Discovery: kube.Discovery(), Dynamic: dyn}, cfg, claims)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vols {
			if v.Status != catalog.VolumeCompleted || v.GroupSnapshot != "" || v.VolumeGroup != "db/"+volumes.LabelVolumeGroup+"=pg" ||
				!strings.Contains(v.Reason, "cut alone, not with group db/"+volumes.LabelVolumeGroup+"=pg: the cluster serves no VolumeGroupSnapshot API") || len(v.Warnings) != 1 {
				t.Errorf("%s: %s %q, group %q/%q, reason %q, warnings %q; want it completed, cut alone with the reason and one warning", v.PVC, v.Status, v.Error, v.VolumeGroup, v.GroupSnapshot, v.Reason, v.Warnings)
			}
		}
		var cut []string
		for len(cuts) > 0 {
			cut = append(cut, <-cuts)
		}
		if strings.Join(cut, ",") != "data,wal" && strings.Join(cut, ",") != "wal,data" {
			t.Errorf("VolumeSnapshots made of %q, want one of each claim", cut)
		}
	})
}

// lineWith is the first line of s holding sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// installSnapshotCRDs serves snapshot.storage.k8s.io/v1 (schemas left open: the test checks the
// tool, not the CRDs), and no group snapshot kinds.
func installSnapshotCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface, kube kubernetes.Interface) {
	t.Helper()
	installCRDs(ctx, t, dyn, kube, "snapshot.storage.k8s.io", "v1", "VolumeSnapshot")
}

// installCRDs serves group/version with kinds K (namespaced), KContent and KClass, as
// external-snapshotter's CRDs do, with open schemas.
func installCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface, kube kubernetes.Interface, group, version, kind string) {
	t.Helper()
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, k := range []struct {
		kind, scope string
	}{{kind, "Namespaced"}, {kind + "Content", "Cluster"}, {kind + "Class", "Cluster"}} {
		plural := strings.ToLower(k.kind) + "s"
		if strings.HasSuffix(k.kind, "Class") {
			plural = strings.ToLower(k.kind) + "es"
		}
		version := map[string]any{"name": version, "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
		if !strings.HasSuffix(k.kind, "Class") {
			version["subresources"] = map[string]any{"status": map[string]any{}}
		}
		crd := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": plural + "." + group,
				"annotations": map[string]any{"api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/955"}},
			"spec": map[string]any{"group": group, "scope": k.scope,
				"names":    map[string]any{"kind": k.kind, "listKind": k.kind + "List", "plural": plural, "singular": strings.ToLower(k.kind)},
				"versions": []any{version}}}}
		if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		res, err := kube.Discovery().ServerResourcesForGroupVersion(group + "/" + version)
		return err == nil && len(res.APIResources) >= 5, nil // three kinds, two status subresources
	})
	if err != nil {
		t.Fatalf("the %s/%s CRDs are not served: %v", group, version, err)
	}
}

// csiClaim is claim ns/name bound to a CSI volume of driver dir.csi, in volume group "pg".
func csiClaim(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pv := ns + "-" + name
	size := corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	rwo := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	if _, err := kube.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pv},
		Spec: corev1.PersistentVolumeSpec{Capacity: size, AccessModes: rwo, ClaimRef: &corev1.ObjectReference{Namespace: ns, Name: name},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "dir.csi", VolumeHandle: pv}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	empty := ""
	if _, err := kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{volumes.LabelVolumeGroup: "pg"}},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pv, StorageClassName: &empty, AccessModes: rwo,
			Resources: corev1.VolumeResourceRequirements{Requests: size}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var c *corev1.PersistentVolumeClaim
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		c, err = kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && c.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		t.Fatalf("claim %s/%s not bound by the PV controller: %v", ns, name, err)
	}
	return c
}

// playSnapshotController makes each VolumeSnapshot of ns ready, as the snapshot controller would
// once the driver cut it, and sends the name of its claim to cuts first. An informer (kube.Until)
// finds the snapshots made before it started too, and outlives a watch the apiserver ends.
func playSnapshotController(ctx context.Context, t *testing.T, snap snapclient.Interface, ns string, cuts chan<- string) {
	_ = pvbkube.Until(ctx, pvbkube.ListWatch(snap.SnapshotV1().VolumeSnapshots(ns), snap, nil), &snapv1.VolumeSnapshot{}, nil, func(ev watch.Event) (bool, error) {
		s, ok := ev.Object.(*snapv1.VolumeSnapshot)
		if !ok || ev.Type != watch.Added || s.Status != nil {
			return false, nil
		}
		s = s.DeepCopy()
		cuts <- ptr.Deref(s.Spec.Source.PersistentVolumeClaimName, "")
		s.Status = &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), CreationTime: ptr.To(metav1.Now()), RestoreSize: ptr.To(resource.MustParse("1Gi"))}
		if _, err := snap.SnapshotV1().VolumeSnapshots(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			t.Errorf("make VolumeSnapshot %s ready: %v", s.Name, err)
		}
		return false, nil
	})
}

// playKubelet ends each mover pod the Job controller creates in ns as a mover that backed its
// volume up would.
func playKubelet(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) {
	_ = pvbkube.Until(ctx, pvbkube.ListWatch(kube.CoreV1().Pods(ns), kube, nil), &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type != watch.Added || len(p.Spec.Containers) == 0 || p.Status.Phase == corev1.PodSucceeded {
			return false, nil
		}
		p = p.DeepCopy()
		c := p.Spec.Containers[0]
		res := mover.Result{Op: c.Args[0], OK: true, SnapshotID: "k-" + p.Name, Files: 1, Bytes: 10, DurationSeconds: 0.1}
		for _, e := range c.Env {
			if e.Name == "PVBACKUP_PVC" {
				res.PVC = e.Value
			}
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", Message: string(mover.MarshalResult(&res))}}}}}
		if _, err := kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			t.Errorf("end mover pod %s: %v", p.Name, err)
		}
		return false, nil
	})
}

// create's preflight, run by the CLI on a real apiserver that serves VolumeGroupSnapshots, as a
// ServiceAccount that may do everything create does but touch group snapshots: claims labelled
// into a group whose driver has a VolumeGroupSnapshotClass make the preflight fail, naming the
// missing right and what it is for, and nothing is created.
func TestCreatePreflightGroupRightsOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	snap := snapclient.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	installSnapshotCRDs(ctx, t, dyn, kube)
	installCRDs(ctx, t, dyn, kube, volumes.GroupSnapshotGroup, "v1beta2", "VolumeGroupSnapshot")
	if _, err := snap.SnapshotV1().VolumeSnapshotClasses().Create(ctx, &snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "dir",
		Annotations: map[string]string{volumes.AnnotationDefaultClass: "true"}}, Driver: "dir.csi", DeletionPolicy: snapv1.VolumeSnapshotContentDelete}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	groups := schema.GroupVersionResource{Group: volumes.GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	classes := groups.GroupVersion().WithResource("volumegroupsnapshotclasses")
	if _, err := dyn.Resource(classes).Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": volumes.GroupSnapshotGroup + "/v1beta2",
		"kind": "VolumeGroupSnapshotClass", "metadata": map[string]any{"name": "dir-group"}, "driver": "dir.csi", "deletionPolicy": "Delete"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	csiClaim(ctx, t, kube, "db", "data")
	csiClaim(ctx, t, kube, "db", "wal")
	token := serviceAccountWithout(ctx, t, kube, "db", "backup", volumes.GroupSnapshotGroup)

	t.Setenv("PVBACKUP_PASSWORD", "integration-pw")
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	root := cli.NewRootCmd(ctx, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs([]string{"--kubeconfig", cp.Kubeconfig, "--token", token, "create", "db-1", "--to", "file://" + dir,
		"--include-namespaces", "db", "--volumes", "snapshot-move", "--mover-location", "s3://backups/db?endpoint=http://s3.storage:8333"})
	err := root.ExecuteContext(ctx)
	t.Logf("create as %s: %v\n%s", "db/backup", err, errOut.String())
	want := "create volumegroupsnapshots." + volumes.GroupSnapshotGroup + " (create: cut a volume group at one instant)"
	if err == nil || !strings.Contains(err.Error(), "preflight: ") || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "nothing was created") {
		t.Fatalf("create: %v; want the preflight to fail naming %q", err, want)
	}
	if list, err := snap.SnapshotV1().VolumeSnapshots("db").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("VolumeSnapshots after the refused run: %v %v", list, err)
	}
	if list, err := dyn.Resource(groups).Namespace("db").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("VolumeGroupSnapshots after the refused run: %v %v", list, err)
	}
	if list, err := kube.BatchV1().Jobs("db").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("Jobs after the refused run: %v %v", list, err)
	}
}

// serviceAccountWithout makes ServiceAccount ns/name, allowed everything on every API group but
// without, and returns a token of it.
func serviceAccountWithout(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name, without string) string {
	t.Helper()
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	groups, err := kube.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{""}
	for _, g := range groups.Groups {
		if g.Name != without {
			allowed = append(allowed, g.Name)
		}
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name + "-without-" + without},
		Rules: []rbacv1.PolicyRule{{APIGroups: allowed, Resources: []string{"*"}, Verbs: []string{"*"}}}}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}
