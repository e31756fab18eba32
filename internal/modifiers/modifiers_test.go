package modifiers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

var resourceOf = map[string]schema.GroupResource{
	"PersistentVolumeClaim": {Resource: "persistentvolumeclaims"},
	"Pod":                   {Resource: "pods"},
	"ConfigMap":             {Resource: "configmaps"},
	"Deployment":            {Group: "apps", Resource: "deployments"},
	"StatefulSet":           {Group: "apps", Resource: "statefulsets"},
	"Widget":                {Group: "example.com", Resource: "widgets"},
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if o.Object != nil {
			out = append(out, o)
		}
	}
}

// TestVeleroExamples applies Velero's documented examples (testdata/modifiers) and compares with
// the objects its documentation says they give.
func TestVeleroExamples(t *testing.T) {
	dirs, err := filepath.Glob(golden.Path("modifiers/*/modifiers.yaml"))
	if err != nil || len(dirs) < 6 {
		t.Fatalf("fixtures: %v %v", dirs, err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(data)
			if err != nil {
				t.Fatal(err)
			}
			in, want := readObjects(t, filepath.Join(dir, "input.yaml")), readObjects(t, filepath.Join(dir, "want.yaml"))
			if len(in) != len(want) {
				t.Fatalf("%d inputs, %d wanted", len(in), len(want))
			}
			for i, o := range in {
				if _, err := m.Apply(resourceOf[o.GetKind()], o); err != nil {
					t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
				}
				// Compared as JSON: numbers decode as int64 or float64 depending on the path.
				if g, w := asJSON(t, o), asJSON(t, want[i]); g != w {
					got, _ := yaml.Marshal(o.Object)
					exp, _ := yaml.Marshal(want[i].Object)
					t.Errorf("%s %s/%s:\n--- want\n%s--- got\n%s", o.GetKind(), o.GetNamespace(), o.GetName(), exp, got)
				}
			}
		})
	}
}

func asJSON(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(v)
	return string(b)
}

func TestLoadRefuses(t *testing.T) {
	rule := func(body string) string {
		return "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: pods\n  patches:\n  - {operation: add, path: /a, value: b}\n" + body
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"not yaml", "{", "not a resource modifier file"},
		{"unknown field", "version: v1\nresourceModifierRule: []\n", `not a resource modifier file: error unmarshaling JSON: while decoding JSON: json: unknown field "resourceModifierRule"`},
		{"version", "version: v2\nresourceModifierRules: []\n", `version "v2": the only resource modifier version is v1`},
		{"no rules", "version: v1\n", "resourceModifierRules is empty"},
		{"no group resource", rule("- conditions: {namespaces: [a]}\n  patches: [{operation: remove, path: /a}]\n"), "resourceModifierRules[1]: conditions.groupResource is empty"},
		{"bad glob", rule("- conditions: {groupResource: \"[pods\"}\n  patches: [{operation: remove, path: /a}]\n"), `resourceModifierRules[1]: conditions.groupResource "[pods"`},
		{"bad regex", rule("- conditions: {groupResource: pods, resourceNameRegex: \"(\"}\n  patches: [{operation: remove, path: /a}]\n"), "resourceModifierRules[1]: conditions.resourceNameRegex: error parsing regexp"},
		{"bad selector", rule("- conditions: {groupResource: pods, labelSelector: {matchExpressions: [{key: a, operator: Near}]}}\n  patches: [{operation: remove, path: /a}]\n"), "resourceModifierRules[1]: conditions.labelSelector"},
		{"match without path", rule("- conditions: {groupResource: pods, matches: [{value: x}]}\n  patches: [{operation: remove, path: /a}]\n"), "resourceModifierRules[1]: conditions.matches[0]: path is empty"},
		{"no patch", rule("- conditions: {groupResource: pods}\n"), "resourceModifierRules[1]: has no patches, mergePatches or strategicPatches"},
		{"two kinds", rule("- conditions: {groupResource: pods}\n  patches: [{operation: remove, path: /a}]\n  mergePatches: [{patchData: '{}'}]\n"), "resourceModifierRules[1]: only one of patches, mergePatches, strategicPatches"},
		{"bad operation", rule("- conditions: {groupResource: pods}\n  patches: [{operation: merge, path: /a}]\n"), `resourceModifierRules[1]: patches[0]: operation "merge": use add, remove, replace, move, copy or test`},
		{"no path", rule("- conditions: {groupResource: pods}\n  patches: [{operation: remove}]\n"), "resourceModifierRules[1]: patches[0]: path is empty"},
		{"copy without from", rule("- conditions: {groupResource: pods}\n  patches: [{operation: copy, path: /a}]\n"), "resourceModifierRules[1]: patches[0]: copy needs from"},
		{"bad json value", rule("- conditions: {groupResource: pods}\n  patches: [{operation: add, path: /a, value: '{\"a\":'}]\n"), `resourceModifierRules[1]: patches[0]: value {"a": is not valid JSON`},
		{"merge patch not an object", rule("- conditions: {groupResource: pods}\n  mergePatches: [{patchData: '[1]'}]\n"), "resourceModifierRules[1]: mergePatches[0].patchData is not an object"},
		{"strategic patch bad yaml", rule("- conditions: {groupResource: pods}\n  strategicPatches: [{patchData: 'a: [b'}]\n"), "resourceModifierRules[1]: strategicPatches[0].patchData"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	pod := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "a"}}}
	}
	widget := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w", "namespace": "a"}}}
	for _, tc := range []struct {
		name, file string
		obj        *unstructured.Unstructured
		want       string
	}{
		{"replace a missing path", "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  patches: [{operation: replace, path: /spec/x, value: y}]\n", pod(),
			"resourceModifierRules[0]: JSON patch: replace operation does not apply: doc is missing path: /spec/x"},
		{"strategic patch of a custom resource", "version: v1\nresourceModifierRules:\n- conditions: {groupResource: widgets.example.com}\n  strategicPatches: [{patchData: '{\"spec\":{\"a\":1}}'}]\n", widget,
			"resourceModifierRules[0]: strategicPatches need the schema of Widget.example.com/v1, which only built-in Kubernetes types have here: use patches or mergePatches for it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Apply(resourceOf[tc.obj.GetKind()], tc.obj)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestValues reads patch values as Velero does.
func TestValues(t *testing.T) {
	for in, want := range map[string]string{
		"premium": `"premium"`, "": `""`, `"true"`: `"true"`, "true": "true", "False": "false", "null": "null",
		"3": "3", "1.5": "1.5", "Inf": `"Inf"`, `{"a":1}`: `{"a":1}`, "[1]": "[1]", `say "hi"`: `"say \"hi\""`,
	} {
		if got := string(jsonValue(in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

func TestApplyReportsChangingRules(t *testing.T) {
	m, err := Load([]byte(`version: v1
resourceModifierRules:
- conditions: {groupResource: pods}
  patches: [{operation: test, path: /metadata/name, value: other}, {operation: add, path: /metadata/labels, value: '{"a":"b"}'}]
- conditions: {groupResource: pods, namespaces: [b]}
  mergePatches: [{patchData: 'metadata: {labels: {c: d}}'}]
- conditions: {groupResource: pods}
  mergePatches: [{patchData: 'metadata: {labels: {e: f}}'}]
`))
	if err != nil {
		t.Fatal(err)
	}
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "a"}}}
	changed, err := m.Apply(schema.GroupResource{Resource: "pods"}, o)
	if err != nil || !reflect.DeepEqual(changed, []int{2}) || !reflect.DeepEqual(o.GetLabels(), map[string]string{"e": "f"}) {
		t.Fatalf("changed %v, labels %v, err %v", changed, o.GetLabels(), err)
	}
}

// TestGroupResourceGlobs: "*" does not cross a dot, as in Velero.
func TestGroupResourceGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob string
		gr   schema.GroupResource
		want bool
	}{
		{"*", schema.GroupResource{Resource: "pods"}, true},
		{"*", schema.GroupResource{Group: "apps", Resource: "deployments"}, false},
		{"*.apps", schema.GroupResource{Group: "apps", Resource: "deployments"}, true},
		{"*.*", schema.GroupResource{Group: "batch", Resource: "jobs"}, true},
		{"*.*", schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, false},
		{"**", schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, true},
		{"persistentvolumeclaims.storage.k8s.io", schema.GroupResource{Resource: "persistentvolumeclaims"}, false},
	} {
		m, err := Load([]byte("version: v1\nresourceModifierRules:\n- conditions: {groupResource: \"" + tc.glob + "\"}\n  mergePatches: [{patchData: '{\"metadata\":{\"labels\":{\"m\":\"y\"}}}'}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "X", "metadata": map[string]any{"name": "x"}}}
		changed, err := m.Apply(tc.gr, o)
		if err != nil || (len(changed) == 1) != tc.want {
			t.Errorf("%q on %s: changed %v, err %v; want match %v", tc.glob, tc.gr, changed, err, tc.want)
		}
	}
}

// A modifier cannot move an object into a namespace the restore's mapping does not name (a
// patch of /metadata/namespace to kube-system, a merge patch, a renamed Namespace): refused
// naming the rule.
func TestModifierCannotMoveObjects(t *testing.T) {
	cm := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c", "namespace": "shop"}}}
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop"}}}
	for _, tc := range []struct {
		name, file string
		gr         schema.GroupResource
		obj        *unstructured.Unstructured
		want       string
	}{
		{"json patch", `
version: v1
resourceModifierRules:
- conditions: {groupResource: configmaps}
  patches: [{operation: add, path: /metadata/labels, value: '{"a":"b"}'}]
- conditions: {groupResource: configmaps}
  patches: [{operation: replace, path: /metadata/namespace, value: kube-system}]`, schema.GroupResource{Resource: "configmaps"}, cm(), `resourceModifierRules[1]: a resource modifier may not move an object to another namespace: it changes the namespace of configmaps c from "shop" to "kube-system"`},
		{"merge patch removing it", `
version: v1
resourceModifierRules:
- conditions: {groupResource: configmaps}
  mergePatches: [{patchData: '{"metadata":{"namespace":null}}'}]`, schema.GroupResource{Resource: "configmaps"}, cm(), `resourceModifierRules[0]: a resource modifier may not move an object to another namespace: it changes the namespace of configmaps c from "shop" to ""`},
		{"renamed Namespace", `
version: v1
resourceModifierRules:
- conditions: {groupResource: namespaces}
  patches: [{operation: replace, path: /metadata/name, value: kube-system}]`, schema.GroupResource{Resource: "namespaces"}, ns, `resourceModifierRules[0]: a resource modifier may not move an object to another namespace: it renames Namespace "shop" to "kube-system"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Apply(tc.gr, tc.obj)
			if !errors.Is(err, ErrMovesObject) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v\nwant %s", err, tc.want)
			}
		})
	}
}
