package doctor

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// grantName names the Role (or ClusterRole) and binding doctor prints.
const grantName = "kubectl-pvbackup"

// grant is the manifest that gives who the rights: a Role and RoleBinding in ns, or a ClusterRole
// and ClusterRoleBinding when ns is "". who is the caller as SelfSubjectReview names it
// ("system:serviceaccount:NS:NAME" for a ServiceAccount); "" leaves a subject to fill in.
func grant(rights []Right, ns, who string) string {
	rules := rulesOf(rights)
	subject := subjectOf(who)
	var docs []any
	if ns == "" {
		docs = []any{
			&rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: metav1.ObjectMeta{Name: grantName}, Rules: rules},
			&rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}, ObjectMeta: metav1.ObjectMeta{Name: grantName},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: grantName}, Subjects: []rbacv1.Subject{subject}},
		}
	} else {
		docs = []any{
			&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: metav1.ObjectMeta{Name: grantName, Namespace: ns}, Rules: rules},
			&rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: metav1.ObjectMeta{Name: grantName, Namespace: ns},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: grantName}, Subjects: []rbacv1.Subject{subject}},
		}
	}
	parts := make([]string, 0, len(docs))
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return ""
		}
		// Server-set fields the YAML would carry empty.
		parts = append(parts, strings.ReplaceAll(string(b), "  creationTimestamp: null\n", ""))
	}
	return strings.Join(parts, "---\n")
}

// rulesOf groups rights into one rule per API group and resource, verbs sorted.
func rulesOf(rights []Right) []rbacv1.PolicyRule {
	type key struct{ group, resource string }
	verbs := map[key]map[string]bool{}
	var keys []key
	for _, r := range rights {
		res := r.Resource
		if r.Subresource != "" {
			res += "/" + r.Subresource
		}
		k := key{r.Group, res}
		if verbs[k] == nil {
			verbs[k] = map[string]bool{}
			keys = append(keys, k)
		}
		verbs[k][r.Verb] = true
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		return keys[i].resource < keys[j].resource
	})
	rules := make([]rbacv1.PolicyRule, 0, len(keys))
	for _, k := range keys {
		vs := make([]string, 0, len(verbs[k]))
		for v := range verbs[k] {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: vs})
	}
	return rules
}

func subjectOf(who string) rbacv1.Subject {
	if rest, ok := strings.CutPrefix(who, "system:serviceaccount:"); ok {
		if ns, name, ok := strings.Cut(rest, ":"); ok {
			return rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: ns}
		}
	}
	if who == "" {
		who = "YOUR-USER"
	}
	return rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: fmt.Sprint(who)}
}
