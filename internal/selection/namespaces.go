package selection

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// NamespaceFilter selects namespaces by --include-namespaces / --exclude-namespaces (globs).
type NamespaceFilter struct {
	Include []string // empty or "*": all
	Exclude []string
}

// All reports whether the filter selects every namespace.
func (f NamespaceFilter) All() bool {
	return (len(f.Include) == 0 || contains(f.Include, "*")) && len(f.Exclude) == 0
}

// Validate checks the globs' syntax.
func (f NamespaceFilter) Validate() error {
	for _, p := range append(append([]string{}, f.Include...), f.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("namespace pattern %q: %w", p, err)
		}
	}
	return nil
}

// Match reports whether ns is selected.
func (f NamespaceFilter) Match(ns string) bool {
	in := len(f.Include) == 0
	for _, p := range f.Include {
		if ok, _ := path.Match(p, ns); ok {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, p := range f.Exclude {
		if ok, _ := path.Match(p, ns); ok {
			return false
		}
	}
	return true
}

// Resolve returns the selected namespaces among existing ones. A literal (non-glob) name in
// Include that does not exist is an error: a typo must not yield an empty backup.
func (f NamespaceFilter) Resolve(existing []string) ([]string, error) {
	have := map[string]bool{}
	for _, n := range existing {
		have[n] = true
	}
	var missing []string
	for _, p := range f.Include {
		if !strings.ContainsAny(p, "*?[") && !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("namespace %s not found (see `kubectl get namespaces`)", quoteJoin(missing))
	}
	var out []string
	for _, n := range existing {
		if f.Match(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
