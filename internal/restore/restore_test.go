package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

var resources = map[string]string{"Service": "services", "PersistentVolume": "persistentvolumes", "PersistentVolumeClaim": "persistentvolumeclaims", "Pod": "pods", "Job": "jobs"}

func TestSanitizeGolden(t *testing.T) {
	data, err := os.ReadFile(golden.Path("sanitize/input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out bytes.Buffer
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		gr := schema.GroupResource{Group: o.GroupVersionKind().Group, Resource: resources[o.GetKind()]}
		Sanitize(gr, &o, SanitizeOptions{RestoredPVs: map[string]bool{"pv-retained": true}})
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	golden.Assert(t, "sanitize/output.golden.yaml", out.Bytes())
}

func TestMapNamespace(t *testing.T) {
	o := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "rb", "namespace": "shop"},
		"subjects": []any{
			map[string]any{"kind": "ServiceAccount", "name": "a", "namespace": "shop"},
			map[string]any{"kind": "ServiceAccount", "name": "b", "namespace": "other"},
		},
	}}
	MapNamespace(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}, o, map[string]string{"shop": "shop-copy"})
	subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
	if o.GetNamespace() != "shop-copy" || subjects[0].(map[string]any)["namespace"] != "shop-copy" || subjects[1].(map[string]any)["namespace"] != "other" {
		t.Fatalf("got %v", o.Object)
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "shop"}}}
	MapNamespace(schema.GroupResource{Resource: "namespaces"}, ns, map[string]string{"shop": "shop-copy"})
	if ns.GetName() != "shop-copy" {
		t.Fatalf("namespace not renamed: %v", ns.Object)
	}
}

func TestOrderGolden(t *testing.T) {
	k := func(group, resource, ns, name string) archive.Key {
		return archive.Key{GVR: schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}, Namespace: ns, Name: name}
	}
	keys := []archive.Key{
		k("networking.k8s.io", "ingresses", "shop", "web"),
		k("example.com", "widgets", "shop", "gear"),
		k("apps", "deployments", "shop", "web"),
		k("", "pods", "shop", "debug"),
		k("", "persistentvolumeclaims", "shop", "data"),
		k("", "services", "shop", "web"),
		k("", "configmaps", "shop", "b"),
		k("", "configmaps", "shop", "a"),
		k("", "configmaps", "admin", "z"),
		k("", "secrets", "shop", "db"),
		k("", "serviceaccounts", "shop", "app"),
		k("rbac.authorization.k8s.io", "rolebindings", "shop", "rb"),
		k("", "persistentvolumes", "", "pv-1"),
		k("storage.k8s.io", "storageclasses", "", "fast"),
		k("rbac.authorization.k8s.io", "clusterroles", "", "reader"),
		k("apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com"),
		k("", "namespaces", "", "shop"),
		k("", "namespaces", "", "admin"),
		k("batch", "cronjobs", "shop", "nightly"),
		k("apps", "statefulsets", "shop", "db"),
		k("policy", "poddisruptionbudgets", "shop", "web"),
	}
	Sort(keys)
	var b strings.Builder
	for _, key := range keys {
		fmt.Fprintf(&b, "%-28s %s\n", PhaseNames[PhaseOf(key.GVR.GroupResource(), key.Namespace != "")], key.Path())
	}
	golden.Assert(t, "restore-order.golden", []byte(b.String()))
}
