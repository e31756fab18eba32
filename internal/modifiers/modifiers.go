// Package modifiers reads Velero's resource modifier files (version v1) and applies them to
// objects on their way into the cluster: `restore --resource-modifiers FILE` takes the file a
// Velero user already has, unchanged.
//
// The semantics follow Velero's internal/resourcemodifiers: every rule whose conditions match
// the object as it was before any rule ran is applied in file order; JSON patches whose test
// operation fails leave the object as it is; a `matches` condition is a JSON patch test. One
// difference: a file is checked whole before anything is restored, and a patch that cannot apply
// to an object is an error for the restore (Velero records it and creates the object unpatched).
package modifiers

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gobwas/glob"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Version is the only file version Velero defines.
const Version = "v1"

// File is a resource modifier file as Velero defines it.
type File struct {
	Version               string `json:"version"`
	ResourceModifierRules []Rule `json:"resourceModifierRules"`
}

// Rule patches the objects its conditions select, with one kind of patch.
type Rule struct {
	Conditions       Conditions  `json:"conditions"`
	Patches          []JSONPatch `json:"patches,omitempty"`
	MergePatches     []PatchData `json:"mergePatches,omitempty"`
	StrategicPatches []PatchData `json:"strategicPatches,omitempty"`
}

// Conditions select objects; all that are set must hold.
type Conditions struct {
	// Namespaces are globs of the namespace the object was backed up from (cluster-scoped
	// objects always match); empty or "*" matches every namespace.
	Namespaces []string `json:"namespaces,omitempty"`
	// GroupResource is a glob of "resource.group" ("deployments.apps", "pods", "*.apps", "*.*")
	// in which "*" does not cross a dot.
	GroupResource     string                `json:"groupResource"`
	ResourceNameRegex string                `json:"resourceNameRegex,omitempty"`
	LabelSelector     *metav1.LabelSelector `json:"labelSelector,omitempty"`
	// Matches are JSON pointer tests that must all hold.
	Matches []Match `json:"matches,omitempty"`
}

// Match tests the value at a JSON pointer.
type Match struct {
	Path  string `json:"path,omitempty"`
	Value string `json:"value,omitempty"`
}

// JSONPatch is one RFC 6902 operation. Value is a string as in Velero: JSON objects, arrays,
// numbers, booleans and null are read as JSON, anything else as a string ("\"true\"" for the
// string true).
type JSONPatch struct {
	Operation string `json:"operation"`
	From      string `json:"from,omitempty"`
	Path      string `json:"path"`
	Value     string `json:"value,omitempty"`
}

// PatchData is a JSON merge patch or strategic merge patch, in JSON or YAML.
type PatchData struct {
	PatchData string `json:"patchData,omitempty"`
}

// Modifiers is a checked file, ready to apply.
type Modifiers struct {
	rules []*rule
	// matched counts, per rule, the objects its conditions selected.
	matched []int
}

type rule struct {
	index      int
	cond       Conditions
	namespaces []glob.Glob
	anyNS      bool
	gr         glob.Glob
	name       *regexp.Regexp
	selector   labels.Selector
	matches    jsonpatch.Patch
	patch      patcher
}

// Load reads and checks a file. Every problem names the rule by its index in
// resourceModifierRules.
func Load(data []byte) (*Modifiers, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("not a resource modifier file: %w", err)
	}
	if !strings.EqualFold(f.Version, Version) {
		return nil, fmt.Errorf("version %q: the only resource modifier version is %s", f.Version, Version)
	}
	if len(f.ResourceModifierRules) == 0 {
		return nil, errors.New("resourceModifierRules is empty")
	}
	m := &Modifiers{matched: make([]int, len(f.ResourceModifierRules))}
	for i, r := range f.ResourceModifierRules {
		c, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("resourceModifierRules[%d]: %w", i, err)
		}
		c.index = i
		m.rules = append(m.rules, c)
	}
	return m, nil
}

func compile(r Rule) (*rule, error) {
	c := &rule{cond: r.Conditions}
	if r.Conditions.GroupResource == "" {
		return nil, errors.New("conditions.groupResource is empty (use \"*.*\" for every resource)")
	}
	var err error
	if c.gr, err = glob.Compile(r.Conditions.GroupResource, '.'); err != nil {
		return nil, fmt.Errorf("conditions.groupResource %q: %w", r.Conditions.GroupResource, err)
	}
	for _, ns := range r.Conditions.Namespaces {
		g, err := glob.Compile(ns)
		if err != nil {
			return nil, fmt.Errorf("conditions.namespaces %q: %w", ns, err)
		}
		c.namespaces = append(c.namespaces, g)
		c.anyNS = c.anyNS || ns == "*"
	}
	c.anyNS = c.anyNS || len(c.namespaces) == 0
	if r.Conditions.ResourceNameRegex != "" {
		if c.name, err = regexp.Compile(r.Conditions.ResourceNameRegex); err != nil {
			return nil, fmt.Errorf("conditions.resourceNameRegex: %w", err)
		}
	}
	if r.Conditions.LabelSelector != nil {
		if c.selector, err = metav1.LabelSelectorAsSelector(r.Conditions.LabelSelector); err != nil {
			return nil, fmt.Errorf("conditions.labelSelector: %w", err)
		}
	}
	var tests []JSONPatch
	for i, m := range r.Conditions.Matches {
		if m.Path == "" {
			return nil, fmt.Errorf("conditions.matches[%d]: path is empty", i)
		}
		tests = append(tests, JSONPatch{Operation: "test", Path: m.Path, Value: m.Value})
	}
	if len(tests) > 0 {
		if c.matches, err = decode(tests); err != nil {
			return nil, fmt.Errorf("conditions.matches: %w", err)
		}
	}
	if c.patch, err = newPatcher(r); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply runs the rules whose conditions match o (an object of gr, still in the namespace it was
// backed up from) and returns the indices of those that changed it.
func (m *Modifiers) Apply(gr schema.GroupResource, o *unstructured.Unstructured) ([]int, error) {
	if m == nil {
		return nil, nil
	}
	// Conditions look at the object as it was before any rule, as in Velero.
	origin := o.DeepCopy()
	var changed []int
	for _, r := range m.rules {
		ok, err := r.match(gr, origin)
		if err != nil {
			return changed, fmt.Errorf("resourceModifierRules[%d] conditions: %w", r.index, err)
		}
		if !ok {
			continue
		}
		m.matched[r.index]++
		before := o.DeepCopy()
		if err := r.patch.apply(o); err != nil {
			return changed, fmt.Errorf("resourceModifierRules[%d]: %w", r.index, err)
		}
		if err := keepsPlace(gr, before, o); err != nil {
			return changed, fmt.Errorf("resourceModifierRules[%d]: %w", r.index, err)
		}
		if !reflect.DeepEqual(before.Object, o.Object) {
			changed = append(changed, r.index)
		}
	}
	return changed, nil
}

// Unmatched returns the indices of the rules that have selected no object so far: after a
// restore, a condition that names nothing (a mapped namespace instead of the backed-up one, a
// group PVCs do not have) is worth a warning.
func (m *Modifiers) Unmatched() []int {
	if m == nil {
		return nil
	}
	var out []int
	for i, n := range m.matched {
		if n == 0 {
			out = append(out, i)
		}
	}
	return out
}

func (r *rule) match(gr schema.GroupResource, o *unstructured.Unstructured) (bool, error) {
	if ns := o.GetNamespace(); ns != "" && !r.anyNS {
		in := false
		for _, g := range r.namespaces {
			in = in || g.Match(ns)
		}
		if !in {
			return false, nil
		}
	}
	if !r.gr.Match(gr.String()) {
		return false, nil
	}
	if r.name != nil && !r.name.MatchString(o.GetName()) {
		return false, nil
	}
	if r.selector != nil && !r.selector.Matches(labels.Set(o.GetLabels())) {
		return false, nil
	}
	if r.matches == nil {
		return true, nil
	}
	doc, err := o.MarshalJSON()
	if err != nil {
		return false, err
	}
	if _, err := r.matches.Apply(doc); err != nil {
		if errors.Is(err, jsonpatch.ErrTestFailed) || errors.Is(err, jsonpatch.ErrMissing) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// decode turns Velero's operations into an RFC 6902 patch.
func decode(ops []JSONPatch) (jsonpatch.Patch, error) {
	var doc []map[string]json.RawMessage
	for i, p := range ops {
		op := strings.ToLower(p.Operation)
		switch op {
		case "add", "remove", "replace", "move", "copy", "test":
		case "":
			return nil, fmt.Errorf("patches[%d]: operation is empty", i)
		default:
			return nil, fmt.Errorf("patches[%d]: operation %q: use add, remove, replace, move, copy or test", i, p.Operation)
		}
		if p.Path == "" {
			return nil, fmt.Errorf("patches[%d]: path is empty", i)
		}
		if (op == "move" || op == "copy") && p.From == "" {
			return nil, fmt.Errorf("patches[%d]: %s needs from", i, op)
		}
		o := map[string]json.RawMessage{"op": quote(op), "path": quote(p.Path)}
		if p.From != "" {
			o["from"] = quote(p.From)
		}
		if op == "add" || op == "replace" || op == "test" {
			v := jsonValue(p.Value)
			if !json.Valid(v) {
				return nil, fmt.Errorf("patches[%d]: value %s is not valid JSON", i, p.Value)
			}
			o["value"] = v
		}
		doc = append(doc, o)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return jsonpatch.DecodePatch(b)
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// jsonValue reads a patch value as Velero does: a quoted string is a string, null, booleans,
// numbers, objects and arrays are JSON, and anything else is a string.
func jsonValue(v string) json.RawMessage {
	switch {
	case v == "":
		return quote("")
	case len(v) >= 2 && strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`):
		return quote(v[1 : len(v)-1])
	case v == "null":
		return json.RawMessage(v)
	case strings.EqualFold(v, "true") || strings.EqualFold(v, "false"):
		return json.RawMessage(strings.ToLower(v))
	case strings.HasPrefix(v, "{") || strings.HasPrefix(v, "["):
		return json.RawMessage(v)
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil && json.Valid([]byte(v)) {
		return json.RawMessage(v)
	}
	return quote(v)
}

// ErrMovesObject is returned (wrapped, naming the rule) by Apply for a patch that changes an
// object's namespace, or a Namespace's name: a restore creates objects only in the namespaces of
// the backup or of its --namespace-mapping, and a modifier file (which may come from anyone who
// can hand one to the operator) must not place them anywhere else (kube-system, say).
var ErrMovesObject = errors.New("a resource modifier may not move an object to another namespace")

func keepsPlace(gr schema.GroupResource, before, after *unstructured.Unstructured) error {
	if b, a := before.GetNamespace(), after.GetNamespace(); b != a {
		return fmt.Errorf("%w: it changes the namespace of %s %s from %q to %q (use --namespace-mapping %s:NEW)", ErrMovesObject, gr, before.GetName(), b, a, b)
	}
	if gr == (schema.GroupResource{Resource: "namespaces"}) && before.GetName() != after.GetName() {
		return fmt.Errorf("%w: it renames Namespace %q to %q (use --namespace-mapping %s:NEW)", ErrMovesObject, before.GetName(), after.GetName(), before.GetName())
	}
	return nil
}
