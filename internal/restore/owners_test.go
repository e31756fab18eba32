package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8stesting "k8s.io/client-go/testing"
)

// ownedBackup: a custom resource's operator keeps a ConfigMap, a claim and a Job in objects it
// owns; a Deployment owns a ReplicaSet; a ConfigMap names an owner the backup does not have.
const ownedBackup = `
apiVersion: v1
kind: Namespace
metadata: {name: shop, uid: ns-1}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: shop, uid: widget-1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: w1-state, namespace: shop, uid: cm-1, ownerReferences: [{apiVersion: example.com/v1, kind: Widget, name: w1, uid: widget-1, controller: true}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: w1-data, namespace: shop, uid: pvc-1, ownerReferences: [{apiVersion: example.com/v1, kind: Widget, name: w1, uid: widget-1, controller: true}]}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: w1-migrate, namespace: shop, uid: job-1, ownerReferences: [{apiVersion: example.com/v1, kind: Widget, name: w1, uid: widget-1, controller: true}]}
spec: {suspend: true, template: {spec: {restartPolicy: Never, containers: [{name: m, image: busybox}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: deploy-1}
spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: w, image: busybox}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, namespace: shop, uid: rs-1, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: deploy-1, controller: true}]}
spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: w, image: busybox}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: orphan, namespace: shop, uid: cm-2, ownerReferences: [{apiVersion: example.com/v1, kind: Widget, name: gone, uid: widget-gone}]}
`

// TestRestoreOwnedObjects: what a custom resource owns is restored (the claim too), owner
// references point at the owner's new uid — set after the owner, which comes in a later phase —
// what a built-in controller recreates is left to it, and a reference to an owner that is
// neither restored nor in the cluster is dropped with a note.
func TestRestoreOwnedObjects(t *testing.T) {
	served = append(served,
		struct {
			gv, kind, resource string
			namespaced         bool
		}{"example.com/v1", "Widget", "widgets", true},
		struct {
			gv, kind, resource string
			namespaced         bool
		}{"apps/v1", "Deployment", "deployments", true},
		struct {
			gv, kind, resource string
			namespaced         bool
		}{"apps/v1", "ReplicaSet", "replicasets", true})
	t.Cleanup(func() { served = served[:len(served)-3] })
	cat := writeBackupOf(t, []byte(ownedBackup))
	dyn, disc := fakeCluster()
	n := 0
	dyn.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n++
		a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured).SetUID(types.UID(fmt.Sprintf("new-%d", n)))
		return false, nil, nil
	})
	res, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, Config{Backup: "shop-1", ArchiveKey: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]Item{}
	for _, it := range res.Items {
		rows[it.Resource+" "+it.Name] = it
	}
	want := map[string]string{
		"configmaps w1-state":            "created ",
		"persistentvolumeclaims w1-data": "created ",
		"jobs.batch w1-migrate":          "created ",
		"widgets.example.com w1":         "created ",
		"deployments.apps web":           "created ",
		"replicasets.apps web-1":         "skipped left to its controller Deployment web",
		"configmaps orphan":              "created owner reference to Widget gone dropped: it is neither restored nor in the cluster",
	}
	for k, w := range want {
		if got := string(rows[k].Action) + " " + rows[k].Reason; got != w {
			t.Errorf("%s: %q, want %q", k, got, w)
		}
	}
	w1, err := dyn.Resource(gvrFor("example.com/v1", "Widget")).Namespace("shop").Get(context.Background(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct{ apiVersion, kind, name string }{{"v1", "ConfigMap", "w1-state"}, {"v1", "PersistentVolumeClaim", "w1-data"}, {"batch/v1", "Job", "w1-migrate"}} {
		got, err := dyn.Resource(gvrFor(o.apiVersion, o.kind)).Namespace("shop").Get(context.Background(), o.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		refs := got.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != w1.GetUID() || refs[0].Kind != "Widget" {
			t.Errorf("%s %s: owner references %+v, want Widget w1 uid %s", o.kind, o.name, refs, w1.GetUID())
		}
	}
	orphan, _ := dyn.Resource(gvrFor("v1", "ConfigMap")).Namespace("shop").Get(context.Background(), "orphan", metav1.GetOptions{})
	if refs := orphan.GetOwnerReferences(); len(refs) != 0 {
		t.Errorf("orphan keeps owner references %+v", refs)
	}
}

func gvrFor(apiVersion, kind string) schema.GroupVersionResource {
	gvr, _ := gvrOf(apiVersion, kind)
	return gvr
}

// TestRestoreCreatesInParallel: objects of one type are created Parallel at a time — the first
// four creates wait for each other here, which only concurrent workers get past — and are listed
// in restore order all the same.
func TestRestoreCreatesInParallel(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, uid: ns-1}\n")
	for i := range 40 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%02d, namespace: shop, uid: cm-%d}\n", i, i)
	}
	cat := writeBackupOf(t, []byte(b.String()))
	dyn, disc := fakeCluster()
	var mu sync.Mutex
	arrived, all := 0, make(chan struct{})
	gated := gate{Interface: dyn, hook: func(o *unstructured.Unstructured) error {
		if o.GetKind() != "ConfigMap" {
			return nil
		}
		mu.Lock()
		if arrived++; arrived == 4 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the first four creates did not run at the same time")
		}
	}}
	res, err := Run(context.Background(), Deps{Dynamic: gated, Discovery: disc, Catalog: cat}, Config{Backup: "shop-1", ArchiveKey: testPassword, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary[Created] != 41 {
		t.Fatalf("summary %v, want 41 created: %+v", res.Summary, res.Items)
	}
	for i, it := range res.Items[1:] {
		if want := fmt.Sprintf("cm-%02d", i); it.Name != want {
			t.Fatalf("item %d is %s, want %s: rows are listed in restore order", i+1, it.Name, want)
		}
	}
}

// gate runs hook before each create, outside the fake client's lock (its reactors run one at a
// time).
type gate struct {
	dynamic.Interface
	hook func(*unstructured.Unstructured) error
}

func (g gate) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return gateResource{g.Interface.Resource(gvr), g.hook}
}

type gateResource struct {
	dynamic.NamespaceableResourceInterface
	hook func(*unstructured.Unstructured) error
}

func (g gateResource) Namespace(ns string) dynamic.ResourceInterface {
	return gateNamespace{g.NamespaceableResourceInterface.Namespace(ns), g.hook}
}

type gateNamespace struct {
	dynamic.ResourceInterface
	hook func(*unstructured.Unstructured) error
}

func (g gateNamespace) Create(ctx context.Context, o *unstructured.Unstructured, opts metav1.CreateOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := g.hook(o); err != nil {
		return nil, err
	}
	return g.ResourceInterface.Create(ctx, o, opts, sub...)
}
