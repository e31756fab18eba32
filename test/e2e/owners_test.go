//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestRestoreOperatorApp: an operator-style application — a CRD, a custom resource, and a
// ConfigMap, a Secret and a data claim the custom resource owns (as CloudNativePG's Cluster owns
// its claims and Secrets), plus a second custom resource it owns — is backed up, deleted with its
// CRD (the operator not installed yet), and restored: everything is back, the claim's data
// equal, and every owner reference points at the restored owner.
func TestRestoreOperatorApp(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-operator")
	dyn := c.dynamic(t)
	ctx := context.Background()
	group := "ops-" + randomSuffix() + ".e2e.example.com" // CRDs are cluster-wide: one of its own
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "databases"}
	crd := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "databases." + group},
		"spec": map[string]any{"group": group, "scope": "Namespaced", "names": map[string]any{"plural": "databases", "singular": "database", "kind": "Database"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(crdGVR).Delete(context.Background(), "databases."+group, metav1.DeleteOptions{})
	})
	db := c.createCR(t, dyn, gvr, ns, "db", nil)
	owned := []metav1.OwnerReference{{APIVersion: group + "/v1", Kind: "Database", Name: "db", UID: db.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	c.createCR(t, dyn, gvr, ns, "db-backup-schedule", owned)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, OwnerReferences: owned} }
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("db-config"), Data: map[string]string{"shared_buffers": "128MB"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta("db-ca"), StringData: map[string]string{"ca.crt": "operator CA"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Owned from the start, as an operator creates it (an update racing the provisioner leaves a
	// ProvisioningFailed "object has been modified" event behind).
	if _, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: meta("db-data"), Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &c.StorageClass,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("200Mi")}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.RunJob(t, ns, "fill", "db-data", 3*time.Minute, "sh", "-c", strings.ReplaceAll(writeScript, "$NAME", "db"))
	want := c.sums(t, ns, []string{"db-data"}, "before")
	c.deleteJobs(t, ns)

	loc := c.location(t)
	name := "operator-" + randomSuffix()
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stdout)
	}
	c.deleteNamespace(t, ns)
	if err := dyn.Resource(crdGVR).Delete(ctx, "databases."+group, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc}, moverArgs()...)...)
	if r.code != 0 || strings.Contains(r.stdout, "left to its controller Database") || !strings.Contains(r.stdout, "1 volume restored") {
		t.Fatalf("restore: exit %d, or what the Database owns left to it, or its claim not filled\n%s", r.code, r.stdout)
	}
	dbNow, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{gvr, "db-backup-schedule"}, {schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "db-config"},
		{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "db-ca"}, {schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, "db-data"}} {
		got, err := dyn.Resource(o.gvr).Namespace(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s %s not restored: %v", o.gvr.Resource, o.name, err)
			continue
		}
		if refs := got.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != dbNow.GetUID() {
			t.Errorf("%s %s: owner references %+v, want Database db (uid %s)", o.gvr.Resource, o.name, refs, dbNow.GetUID())
		}
	}
	if got := c.sums(t, ns, []string{"db-data"}, "after"); got["db-data"] != want["db-data"] {
		t.Errorf("restored data differs\nwant:\n%s\ngot:\n%s", head(want["db-data"]), head(got["db-data"]))
	}
	c.noLeftovers(t, name)
}

func (c *Cluster) dynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	return dynamic.NewForConfigOrDie(cfg)
}

// createCR creates a custom resource once its CRD is served (a new CRD takes a moment).
func (c *Cluster) createCR(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string, owners []metav1.OwnerReference) *unstructured.Unstructured {
	t.Helper()
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gvr.GroupVersion().String(), "kind": "Database",
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": map[string]any{"instances": int64(1)}}}
	o.SetOwnerReferences(owners)
	var out *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		out, err = dyn.Resource(gvr).Namespace(ns).Create(ctx, o, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("create %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return out
}
