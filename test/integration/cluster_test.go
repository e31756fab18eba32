//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// apply creates every object of a multi-document YAML file, waiting for CRDs to be served
// before the objects that use them.
func apply(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatal(err)
		}
		if o.Object == nil {
			continue
		}
		gvk := o.GroupVersionKind()
		var mapping *meta.RESTMapping
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				mapper.Reset()
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("map %s: %v", gvk, err)
		}
		ri := dyn.Resource(mapping.Resource)
		var rerr error
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			_, rerr = ri.Namespace(o.GetNamespace()).Create(ctx, &o, metav1.CreateOptions{})
		} else {
			_, rerr = ri.Create(ctx, &o, metav1.CreateOptions{})
		}
		if rerr != nil {
			t.Fatalf("create %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), rerr)
		}
	}
}

// compared are the resources whose objects the round trip compares.
var compared = []schema.GroupVersionResource{
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "persistentvolumeclaims"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	{Group: "example.com", Version: "v1", Resource: "widgets"},
}

// snapshot returns the application's objects in ns, normalised to what a restore promises to
// keep: the spec and the user's metadata, without what the cluster allocates or records.
// Namespace names inside are replaced by "NS" so a mapped restore compares equal.
func snapshot(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, gvr := range compared {
		list, err := dyn.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s in %s: %v", gvr.Resource, ns, err)
		}
		for _, o := range list.Items {
			if gvr.Resource == "secrets" && strings.HasPrefix(o.GetName(), "default-token") {
				continue
			}
			n := normalise(gvr.Resource, o.Object)
			b, _ := json.Marshal(n)
			out[gvr.Resource+"/"+o.GetName()] = strings.ReplaceAll(string(b), `"`+ns+`"`, `"NS"`)
		}
	}
	if len(out) < 15 {
		t.Fatalf("snapshot of %s has only %d objects: the fixture did not apply", ns, len(out))
	}
	return out
}

var volatileAnnotations = []string{
	"deployment.kubernetes.io/revision", "pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
	"volume.kubernetes.io/selected-node", "kubectl.kubernetes.io/last-applied-configuration",
}

func normalise(resource string, obj map[string]any) map[string]any {
	o := (&unstructured.Unstructured{Object: obj}).DeepCopy().Object
	md := o["metadata"].(map[string]any)
	keep := map[string]any{"name": md["name"], "namespace": md["namespace"]}
	if l, ok := md["labels"]; ok {
		keep["labels"] = l
	}
	if a, ok := md["annotations"].(map[string]any); ok {
		for _, k := range volatileAnnotations {
			delete(a, k)
		}
		if len(a) > 0 {
			keep["annotations"] = a
		}
	}
	o["metadata"] = keep
	delete(o, "status")
	if resource == "services" {
		spec := o["spec"].(map[string]any)
		if spec["clusterIP"] != "None" {
			delete(spec, "clusterIP")
			delete(spec, "clusterIPs")
		}
	}
	return o
}

func diff(t *testing.T, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s differs after restore:\nbefore: %s\nafter:  %s", k, want[k], got[k])
		}
	}
}

// deleteNamespace deletes ns and waits until the namespace controller has removed it.
func deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	// UntilWithSync lists and watches again when the apiserver closes the watch (it does, on a
	// loaded machine, before the namespace is gone).
	lw := kube.ListWatch(cs.CoreV1().Namespaces(), cs, kube.Named(ns))
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Namespace{}, func(store cache.Store) (bool, error) {
		_, exists, err := store.GetByKey(ns)
		return !exists, err
	}, func(ev watch.Event) (bool, error) { return ev.Type == watch.Deleted, nil })
	if err != nil {
		t.Fatalf("namespace %s not deleted in 2m: %v", ns, err)
	}
}
