//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

var gvrGizmo = schema.GroupVersionResource{Group: "ops.example.com", Version: "v1", Resource: "gizmos"}

const gizmoCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.ops.example.com}
spec:
  group: ops.example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// TestRestoreObjectsOwnedByCustomResources: what an operator keeps in objects its custom
// resource owns (a ConfigMap, a CA Secret, a claim, another custom resource, a Deployment) is
// restored — none of it recreates itself — with owner references pointed at the restored
// owners' new uids, so the garbage collector keeps them; only what a built-in controller
// recreates (the Deployment's ReplicaSet) is left to it, and the table says so. The CRD is gone
// too, as when the operator is not installed yet.
func TestRestoreObjectsOwnedByCustomResources(t *testing.T) {
	ctx := context.Background()
	ns := "ops"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, ns) })
	apply(t, writeFile(t, "crd.yaml", gizmoCRD))
	db := createGizmo(t, ns, "db", nil)
	own := func(o metav1.Object) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "ops.example.com/v1", Kind: "Gizmo", Name: o.GetName(), UID: o.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	}
	createGizmo(t, ns, "db-nightly", own(db))
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, OwnerReferences: own(db)} }
	mustCreate(t)(cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("db-config"), Data: map[string]string{"max_connections": "100"}}, metav1.CreateOptions{}))
	mustCreate(t)(cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta("db-ca"), StringData: map[string]string{"ca.crt": "the operator's CA"}}, metav1.CreateOptions{}))
	mustCreate(t)(cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: meta("db-data"), Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To("ops-none"),
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}, metav1.CreateOptions{}))
	labels := map[string]string{"app": "db-proxy"}
	mustCreate(t)(cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta("db-proxy"), Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "p", Image: "busybox"}}}}}}, metav1.CreateOptions{}))
	rs := waitReplicaSet(t, ns, "app=db-proxy")

	loc := "file://" + t.TempDir()
	t.Setenv("PVBACKUP_PASSWORD", "correct horse battery staple")
	if r := run(t, "create", "ops-1", "--to", loc, "--include-namespaces", ns); r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	deleteNamespace(t, ns)
	if err := dyn.Resource(grCRD).Delete(ctx, "gizmos.ops.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, grCRD, "", "gizmos.ops.example.com")

	r := run(t, "restore", "ops-1", "--from", loc)
	if r.code != 0 || strings.Contains(r.out, "left to its controller Gizmo") {
		t.Fatalf("restore: exit %d, or objects owned by a custom resource left to it\n%s%s", r.code, r.out, r.err)
	}
	if !hasRow(r.out, "replicasets.apps", ns, rs, "skipped", "left to its controller Deployment db-proxy") {
		t.Errorf("the table does not say the ReplicaSet was left to its Deployment:\n%s", r.out)
	}
	dbNow := get(t, gvrGizmo, ns, "db")
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{gvrGizmo, "db-nightly"}, {cmGVR, "db-config"}, {secretGVR, "db-ca"}, {pvcGVR, "db-data"}, {deployGVR, "db-proxy"}} {
		got := get(t, o.gvr, ns, o.name)
		refs := got.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != dbNow.GetUID() || refs[0].Name != "db" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%s %s: owner references %+v, want Gizmo db (uid %s) as controller", o.gvr.Resource, o.name, refs, dbNow.GetUID())
		}
	}
	if cm := get(t, cmGVR, ns, "db-config"); cm.Object["data"].(map[string]any)["max_connections"] != "100" {
		t.Errorf("db-config data: %v", cm.Object["data"])
	}
	// The restored Deployment makes a ReplicaSet of its own, owned by it.
	waitReplicaSet(t, ns, "app=db-proxy")
}

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	pvcGVR    = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func createGizmo(t *testing.T, ns, name string, owners []metav1.OwnerReference) *unstructured.Unstructured {
	t.Helper()
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "ops.example.com/v1", "kind": "Gizmo", "metadata": map[string]any{"name": name, "namespace": ns}, "spec": map[string]any{"size": int64(3)}}}
	o.SetOwnerReferences(owners)
	var out *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		out, err = dyn.Resource(gvrGizmo).Namespace(ns).Create(ctx, o, metav1.CreateOptions{})
		return err == nil, nil // NotFound until the CRD is served
	})
	if err != nil {
		t.Fatalf("create Gizmo %s: %v", name, err)
	}
	return out
}

func mustCreate(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return o
}

// waitReplicaSet waits for the deployment controller's ReplicaSet and returns its name.
func waitReplicaSet(t *testing.T, ns, selector string) string {
	t.Helper()
	var name string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		name = l.Items[0].Name
		return true, nil
	})
	if err != nil {
		t.Fatalf("no ReplicaSet %s in %s: %v", selector, ns, err)
	}
	return name
}

func waitGone(t *testing.T, gvr schema.GroupVersionResource, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("%s %s/%s not gone: %v", gvr.Resource, ns, name, err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
