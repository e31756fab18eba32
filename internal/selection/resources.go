// Package selection decides what a backup or a restore covers: which API resources (resolved
// through discovery, the way kubectl and Velero name them), which namespaces, which labels.
package selection

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Resource is one listable API resource at its preferred version.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Singular   string
	ShortNames []string
	Namespaced bool
}

// GroupResource returns "deployments.apps" ("pods" for the core group): the name users write.
func (r Resource) GroupResource() string { return r.GVR.GroupResource().String() }

// Transient lists resources left out unless named in --include-resources: they are recreated by
// the cluster, describe the cluster rather than the application, or would clash on restore.
var Transient = []string{
	"events", "events.events.k8s.io", // history, not state
	"nodes", "csinodes.storage.k8s.io", "volumeattachments.storage.k8s.io", // the cluster's machines
	"leases.coordination.k8s.io",                                      // leader-election locks, renewed every few seconds
	"ipaddresses.networking.k8s.io", "servicecidrs.networking.k8s.io", // allocated by the apiserver
	"componentstatuses",
	"nodes.metrics.k8s.io", "pods.metrics.k8s.io", // live metrics
}

// ControllerManagedLabels mark objects a controller writes from other objects (endpoints of
// Services with selectors): backing them up would restore stale copies.
var ControllerManagedLabels = map[string]string{
	"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
	"endpoints.kubernetes.io/managed-by":     "endpoint-controller",
}

// Discover returns every listable resource at its group's preferred version. Groups whose
// discovery failed (an aggregated API that is down) are returned as warnings, not errors.
func Discover(dc discovery.DiscoveryInterface) ([]Resource, []string, error) {
	lists, err := discovery.ServerPreferredResources(dc)
	var warnings []string
	if err != nil {
		var gdf *discovery.ErrGroupDiscoveryFailed
		if !errors.As(err, &gdf) {
			return nil, nil, fmt.Errorf("discover API resources: %w", err)
		}
		for gv, e := range gdf.Groups {
			warnings = append(warnings, fmt.Sprintf("API group %s skipped: discovery failed: %v", gv, e))
		}
		sort.Strings(warnings)
	}
	return FromLists(lists), warnings, nil
}

// FromLists turns discovery lists into resources, keeping those that can be listed and created.
func FromLists(lists []*metav1.APIResourceList) []Resource {
	var out []Resource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") { // subresources
				continue
			}
			if !hasVerbs(r.Verbs, "list", "get") {
				continue
			}
			singular := r.SingularName
			if singular == "" {
				singular = strings.ToLower(r.Kind)
			}
			out = append(out, Resource{
				GVR:        gv.WithResource(r.Name),
				Kind:       r.Kind,
				Singular:   singular,
				ShortNames: r.ShortNames,
				Namespaced: r.Namespaced,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GroupResource() < out[j].GroupResource() })
	return out
}

func hasVerbs(verbs metav1.Verbs, want ...string) bool {
	for _, w := range want {
		found := false
		for _, v := range verbs {
			if v == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// matches reports whether a user's term names r: a plural, singular, kind or short name,
// optionally qualified by group ("deployments.apps", "Deployment.apps", "deploy").
func (r Resource) matches(term string) bool {
	term = strings.ToLower(strings.TrimSpace(term))
	name, group, qualified := strings.Cut(term, ".")
	if qualified && group != strings.ToLower(r.GVR.Group) {
		// "deployments.v1.apps" (kubectl's fully qualified form) names a version too.
		v, g, ok := strings.Cut(group, ".")
		if !ok || v != r.GVR.Version || g != strings.ToLower(r.GVR.Group) {
			return false
		}
	}
	if name == r.GVR.Resource || name == r.Singular || name == strings.ToLower(r.Kind) {
		return true
	}
	for _, s := range r.ShortNames {
		if name == s {
			return true
		}
	}
	return false
}

// ResourceFilter selects resources by --include-resources / --exclude-resources.
type ResourceFilter struct {
	Include []string // empty or "*": all
	Exclude []string
}

// Resolve applies the filter to the discovered resources. Every term must name a resource;
// an unknown one is an error that suggests close matches. Transient resources are left out
// unless explicitly included.
func (f ResourceFilter) Resolve(all []Resource) ([]Resource, error) {
	var unknown []string
	check := func(terms []string) {
		for _, t := range terms {
			if t == "*" {
				continue
			}
			found := false
			for _, r := range all {
				if r.matches(t) {
					found = true
					break
				}
			}
			if !found {
				unknown = append(unknown, t)
			}
		}
	}
	check(f.Include)
	check(f.Exclude)
	if len(unknown) > 0 {
		return nil, unknownError(unknown, all)
	}
	includeAll := len(f.Include) == 0 || contains(f.Include, "*")
	var out []Resource
	for _, r := range all {
		explicit := anyMatch(r, f.Include)
		if !includeAll && !explicit {
			continue
		}
		if anyMatch(r, f.Exclude) {
			continue
		}
		if !explicit && IsTransient(r) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// IsTransient reports whether r is on the Transient list.
func IsTransient(r Resource) bool {
	for _, t := range Transient {
		if r.GroupResource() == t {
			return true
		}
	}
	return false
}

// Names reports whether one of terms names r (a "*" names nothing in particular).
func Names(r Resource, terms []string) bool { return anyMatch(r, terms) }

func anyMatch(r Resource, terms []string) bool {
	for _, t := range terms {
		if t != "*" && r.matches(t) {
			return true
		}
	}
	return false
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func unknownError(unknown []string, all []Resource) error {
	var msgs []string
	for _, u := range unknown {
		msg := fmt.Sprintf("unknown resource type %q", u)
		if s := suggest(u, all); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, ", ") + "?)"
		}
		msgs = append(msgs, msg)
	}
	return fmt.Errorf("%s: see `kubectl api-resources` for the names this cluster serves", strings.Join(msgs, "; "))
}

// suggest returns up to three resource names within a small edit distance of term.
func suggest(term string, all []Resource) []string {
	term = strings.ToLower(term)
	name, _, _ := strings.Cut(term, ".")
	type cand struct {
		name string
		d    int
	}
	best := map[string]int{}
	for _, r := range all {
		names := append([]string{r.GVR.Resource, r.Singular, strings.ToLower(r.Kind)}, r.ShortNames...)
		for _, n := range names {
			d := distance(name, n)
			if strings.HasPrefix(n, name) && len(name) >= 3 {
				d = 1
			}
			limit := 2
			if len(name) > 8 {
				limit = 3
			}
			if d <= limit {
				gr := r.GroupResource()
				if old, ok := best[gr]; !ok || d < old {
					best[gr] = d
				}
			}
		}
	}
	var cands []cand
	for n, d := range best {
		cands = append(cands, cand{n, d})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		return cands[i].name < cands[j].name
	})
	var out []string
	for i := 0; i < len(cands) && i < 3; i++ {
		out = append(out, cands[i].name)
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
