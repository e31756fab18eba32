package modifiers

import (
	"errors"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// patcher changes one object; the object is left as it was when it fails.
type patcher interface {
	apply(o *unstructured.Unstructured) error
}

func newPatcher(r Rule) (patcher, error) {
	kinds := 0
	for _, n := range []int{len(r.Patches), len(r.MergePatches), len(r.StrategicPatches)} {
		if n > 0 {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return nil, errors.New("has no patches, mergePatches or strategicPatches")
	case kinds > 1:
		return nil, errors.New("only one of patches, mergePatches, strategicPatches can be specified")
	case len(r.Patches) > 0:
		p, err := decode(r.Patches)
		if err != nil {
			return nil, err
		}
		return jsonPatcher{p}, nil
	case len(r.MergePatches) > 0:
		docs, err := patchDocs("mergePatches", r.MergePatches)
		return mergePatcher{docs}, err
	default:
		docs, err := patchDocs("strategicPatches", r.StrategicPatches)
		return strategicPatcher{docs}, err
	}
}

// patchDocs reads each patchData (JSON or YAML) as a JSON object.
func patchDocs(field string, ps []PatchData) ([][]byte, error) {
	var out [][]byte
	for i, p := range ps {
		b, err := yaml.YAMLToJSON([]byte(p.PatchData))
		if err != nil {
			return nil, fmt.Errorf("%s[%d].patchData: %w", field, i, err)
		}
		var m map[string]any
		strict, err := kjson.UnmarshalStrict(b, &m)
		if err != nil || m == nil {
			return nil, fmt.Errorf("%s[%d].patchData is not an object (%v)", field, i, orNil(err))
		}
		if len(strict) > 0 {
			return nil, fmt.Errorf("%s[%d].patchData: %w", field, i, errors.Join(strict...))
		}
		out = append(out, b)
	}
	return out, nil
}

func orNil(err error) any {
	if err == nil {
		return "empty"
	}
	return err
}

type jsonPatcher struct{ p jsonpatch.Patch }

func (j jsonPatcher) apply(o *unstructured.Unstructured) error {
	doc, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	out, err := j.p.Apply(doc)
	if errors.Is(err, jsonpatch.ErrTestFailed) {
		return nil // a failed test is a condition that does not hold, as in Velero
	}
	if err != nil {
		return fmt.Errorf("JSON patch: %w", err)
	}
	return o.UnmarshalJSON(out)
}

type mergePatcher struct{ docs [][]byte }

func (m mergePatcher) apply(o *unstructured.Unstructured) error {
	doc, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	for i, p := range m.docs {
		if doc, err = jsonpatch.MergePatch(doc, p); err != nil {
			return fmt.Errorf("mergePatches[%d]: %w", i, err)
		}
	}
	return o.UnmarshalJSON(doc)
}

type strategicPatcher struct{ docs [][]byte }

// apply merges with the object's Go type from client-go's scheme, which carries the patch
// strategies and merge keys (containers merge by name, ...); custom resources have none.
func (s strategicPatcher) apply(o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	schemaObj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return fmt.Errorf("strategicPatches need the schema of %s, which only built-in Kubernetes types have here: use patches or mergePatches for it", gvk.GroupKind().String()+"/"+gvk.Version)
	}
	cur := o.Object
	for i, p := range s.docs {
		var pm map[string]any
		if _, err := kjson.UnmarshalStrict(p, &pm); err != nil {
			return fmt.Errorf("strategicPatches[%d]: %w", i, err)
		}
		if cur, err = strategicpatch.StrategicMergeMapPatch(cur, pm, schemaObj); err != nil {
			return fmt.Errorf("strategicPatches[%d]: %w", i, err)
		}
	}
	o.Object = cur
	return nil
}
