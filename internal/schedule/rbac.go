package schedule

import (
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
)

// listAll is the rule that lets create back up every type of object: it lists each type the
// cluster serves, custom resources included, so no list of names can stand for it.
var listAll = rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"list"}}

// Rules are the RBAC rules of the schedule: cluster for its ClusterRole, namespaced for the Role
// in each backed-up namespace (nil when ClusterWide: they are in the ClusterRole). One rule per
// resource, so that each rule can be taken away alone and the run then fails naming it; a verb
// a wildcard rule already grants is left out of the resource's rule.
func (c Config) Rules() (cluster, namespaced []rbacv1.PolicyRule) {
	clusterRights, nsRights := doctor.RightsFor(c.Needs)
	lists := false
	var ns []doctor.Right
	for _, r := range nsRights {
		if r.Need == "resources" && r.Verb == "list" {
			lists = true // every type, not the few doctor asks about
			continue
		}
		ns = append(ns, r)
	}
	if c.ClusterWide {
		all := append(clusterRights, ns...)
		if lists || c.ListEverything {
			return withWildcard(all), nil
		}
		return merge(all), nil
	}
	if c.ListEverything {
		return withWildcard(append(clusterRights, ns...)), nil
	}
	if lists {
		return merge(clusterRights), withWildcard(ns)
	}
	return merge(clusterRights), merge(ns)
}

// withWildcard is listAll plus the other rights without their list verb.
func withWildcard(rights []doctor.Right) []rbacv1.PolicyRule {
	var rest []doctor.Right
	for _, r := range rights {
		if r.Verb != "list" {
			rest = append(rest, r)
		}
	}
	return append([]rbacv1.PolicyRule{listAll}, merge(rest)...)
}

// merge makes one rule per group and resource (a subresource is a resource of its own), with
// its verbs in a fixed order.
func merge(rights []doctor.Right) []rbacv1.PolicyRule {
	type key struct{ group, resource string }
	verbs := map[key]map[string]bool{}
	for _, r := range rights {
		res := r.Resource
		if r.Subresource != "" {
			res += "/" + r.Subresource
		}
		k := key{r.Group, res}
		if verbs[k] == nil {
			verbs[k] = map[string]bool{}
		}
		verbs[k][r.Verb] = true
	}
	keys := make([]key, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		return keys[i].resource < keys[j].resource
	})
	out := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: ordered(verbs[k])})
	}
	return out
}

var verbOrder = []string{"get", "list", "watch", "create", "patch", "delete"}

func ordered(set map[string]bool) []string {
	var out []string
	for _, v := range verbOrder {
		if set[v] {
			out = append(out, v)
		}
	}
	return out
}
