package selection

import (
	"fmt"
	"strings"
)

// ScopedFilter is Velero's new-style resource filter (--include/exclude-cluster-scoped-resources,
// --include/exclude-namespace-scoped-resources). Each list names resources of its own scope only.
// It replaces ResourceFilter and the cluster mode; the two styles cannot be mixed.
type ScopedFilter struct {
	IncludeCluster    []string
	ExcludeCluster    []string
	IncludeNamespaced []string
	ExcludeNamespaced []string
}

// Empty reports whether no scoped filter was given.
func (f ScopedFilter) Empty() bool {
	return len(f.IncludeCluster)+len(f.ExcludeCluster)+len(f.IncludeNamespaced)+len(f.ExcludeNamespaced) == 0
}

// Scoped is a resolved ScopedFilter.
type Scoped struct {
	Namespaced []Resource // listed in the selected namespaces
	Cluster    []Resource // cluster-scoped, listed whole (the Namespace objects of the selection apart)
	// Namespaces is false when the Namespace objects themselves are excluded.
	Namespaces bool
	// AllCluster: every cluster-scoped resource is listed (a whole-cluster backup), so nothing is
	// fetched as needed by the selection.
	AllCluster bool
	// excludeCluster are the cluster-scoped exclusions, which also keep out objects the selection
	// needs (PVs, StorageClasses, CRDs); "*" keeps out every one.
	excludeCluster []string
}

// Excluded reports whether a cluster-scoped resource is kept out, even when the selection needs it.
func (s *Scoped) Excluded(r Resource) bool {
	return contains(s.excludeCluster, "*") || anyMatch(r, s.excludeCluster)
}

// Merge adds a resource policy's filters (Velero's includeExcludePolicy) to f: the command line
// comes first, so a policy term is added only when the flags neither include nor exclude any
// resource it names.
func (f ScopedFilter) Merge(policy ScopedFilter, all []Resource) ScopedFilter {
	add := func(inc, exc []string, terms []string) []string {
		var out []string
		for _, t := range terms {
			taken := false
			for _, r := range all {
				if r.matches(t) && (anyMatch(r, inc) || anyMatch(r, exc) || contains(inc, "*") || contains(exc, "*")) {
					taken = true
				}
			}
			if !taken {
				out = append(out, t)
			}
		}
		return out
	}
	out := f
	out.ExcludeNamespaced = append(append([]string{}, f.ExcludeNamespaced...), add(f.IncludeNamespaced, f.ExcludeNamespaced, policy.ExcludeNamespaced)...)
	out.IncludeNamespaced = append(append([]string{}, f.IncludeNamespaced...), add(f.IncludeNamespaced, f.ExcludeNamespaced, policy.IncludeNamespaced)...)
	out.ExcludeCluster = append(append([]string{}, f.ExcludeCluster...), add(f.IncludeCluster, f.ExcludeCluster, policy.ExcludeCluster)...)
	out.IncludeCluster = append(append([]string{}, f.IncludeCluster...), add(f.IncludeCluster, f.ExcludeCluster, policy.IncludeCluster)...)
	return out
}

// Resolve applies the filter as Velero does: namespace-scoped resources are all included unless
// an include list narrows them; cluster-scoped ones are all included only for a whole-cluster
// backup (every namespace, every namespace-scoped type, no cluster filter), otherwise only those
// included by name, plus the Namespace objects; exclusions win. Transient resources stay out
// unless named. Every term must name a resource of its flag's scope.
func (f ScopedFilter) Resolve(all []Resource, allNamespaces bool) (*Scoped, error) {
	if err := f.check(all); err != nil {
		return nil, err
	}
	s := &Scoped{excludeCluster: f.ExcludeCluster}
	nsEverything := (len(f.IncludeNamespaced) == 0 || contains(f.IncludeNamespaced, "*")) && len(f.ExcludeNamespaced) == 0
	s.AllCluster = len(f.IncludeCluster) == 0 && len(f.ExcludeCluster) == 0 && allNamespaces && nsEverything
	for _, r := range all {
		if r.Namespaced {
			explicit := anyMatch(r, f.IncludeNamespaced)
			in := len(f.IncludeNamespaced) == 0 || contains(f.IncludeNamespaced, "*") || explicit
			if in && !contains(f.ExcludeNamespaced, "*") && !anyMatch(r, f.ExcludeNamespaced) && (explicit || !IsTransient(r)) {
				s.Namespaced = append(s.Namespaced, r)
			}
			continue
		}
		if r.GVR.Group == "" && r.GVR.Resource == "namespaces" {
			s.Namespaces = !s.Excluded(r)
			continue
		}
		explicit := anyMatch(r, f.IncludeCluster)
		in := s.AllCluster || contains(f.IncludeCluster, "*") || explicit
		if in && !s.Excluded(r) && (explicit || !IsTransient(r)) {
			s.Cluster = append(s.Cluster, r)
		}
	}
	return s, nil
}

// check refuses unknown names and names given to the other scope's flag.
func (f ScopedFilter) check(all []Resource) error {
	var unknown, wrong []string
	for _, l := range []struct {
		flag       string
		terms      []string
		namespaced bool
	}{
		{"include-cluster-scoped-resources", f.IncludeCluster, false}, {"exclude-cluster-scoped-resources", f.ExcludeCluster, false},
		{"include-namespace-scoped-resources", f.IncludeNamespaced, true}, {"exclude-namespace-scoped-resources", f.ExcludeNamespaced, true},
	} {
		for _, t := range l.terms {
			if t == "*" {
				continue
			}
			found, inScope := false, false
			for _, r := range all {
				if r.matches(t) {
					found = true
					inScope = inScope || r.Namespaced == l.namespaced
				}
			}
			switch {
			case !found:
				unknown = append(unknown, t)
			case !inScope:
				other := "namespace-scoped"
				if l.namespaced {
					other = "cluster-scoped"
				}
				wrong = append(wrong, fmt.Sprintf("--%s %s: %s is %s", l.flag, t, t, other))
			}
		}
	}
	if len(unknown) > 0 {
		return unknownError(unknown, all)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s: name each resource in the flag of its scope", strings.Join(wrong, "; "))
	}
	return nil
}
