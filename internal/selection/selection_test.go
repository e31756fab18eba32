package selection

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var verbs = metav1.Verbs{"create", "delete", "get", "list", "watch"}

// discovered is a small cluster's discovery, enough to exercise every naming form.
var discovered = FromLists([]*metav1.APIResourceList{
	{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", SingularName: "pod", Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Verbs: verbs},
		{Name: "pods/log", Kind: "Pod", Namespaced: true, Verbs: metav1.Verbs{"get"}},
		{Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", Namespaced: true, ShortNames: []string{"cm"}, Verbs: verbs},
		{Name: "secrets", SingularName: "secret", Kind: "Secret", Namespaced: true, Verbs: verbs},
		{Name: "events", SingularName: "event", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}, Verbs: verbs},
		{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", ShortNames: []string{"ns"}, Verbs: verbs},
		{Name: "bindings", SingularName: "binding", Kind: "Binding", Namespaced: true, Verbs: metav1.Verbs{"create"}},
	}},
	{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments", SingularName: "deployment", Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}, Verbs: verbs},
		{Name: "statefulsets", SingularName: "statefulset", Kind: "StatefulSet", Namespaced: true, ShortNames: []string{"sts"}, Verbs: verbs},
	}},
	{GroupVersion: "events.k8s.io/v1", APIResources: []metav1.APIResource{
		{Name: "events", SingularName: "event", Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}, Verbs: verbs},
	}},
	{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
		{Name: "widgets", SingularName: "widget", Kind: "Widget", Namespaced: true, ShortNames: []string{"wdg"}, Verbs: verbs},
	}},
})

func names(rs []Resource) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.GroupResource())
	}
	return strings.Join(s, " ")
}

func TestResourceFilter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		filter  ResourceFilter
		want    string
		wantErr string
	}{
		{name: "default leaves transient and unlistable out", want: "configmaps deployments.apps namespaces pods secrets statefulsets.apps widgets.example.com"},
		{name: "kind, plural, short and qualified names", filter: ResourceFilter{Include: []string{"Deployment", "cm", "widgets.example.com", "statefulsets.v1.apps"}}, want: "configmaps deployments.apps statefulsets.apps widgets.example.com"},
		{name: "short name with group", filter: ResourceFilter{Include: []string{"deploy.apps", "Pod"}}, want: "deployments.apps pods"},
		{name: "explicit include of a transient resource", filter: ResourceFilter{Include: []string{"events"}}, want: "events events.events.k8s.io"},
		{name: "group narrows an ambiguous name", filter: ResourceFilter{Include: []string{"events.events.k8s.io"}}, want: "events.events.k8s.io"},
		{name: "exclude", filter: ResourceFilter{Exclude: []string{"secrets", "wdg", "ns"}}, want: "configmaps deployments.apps pods statefulsets.apps"},
		{name: "wildcard with exclude", filter: ResourceFilter{Include: []string{"*"}, Exclude: []string{"pods"}}, want: "configmaps deployments.apps namespaces secrets statefulsets.apps widgets.example.com"},
		{name: "typo gets a suggestion", filter: ResourceFilter{Include: []string{"deploymnets"}}, wantErr: `unknown resource type "deploymnets" (did you mean deployments.apps?)`},
		{name: "unknown in exclude too", filter: ResourceFilter{Exclude: []string{"configmap", "sekrets"}}, wantErr: `unknown resource type "sekrets" (did you mean secrets?)`},
		{name: "wrong group", filter: ResourceFilter{Include: []string{"deployments.batch"}}, wantErr: `unknown resource type "deployments.batch" (did you mean deployments.apps?)`},
		{name: "nothing close", filter: ResourceFilter{Include: []string{"zzzzzz"}}, wantErr: `unknown resource type "zzzzzz": see`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.filter.Resolve(discovered)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", names(got), tc.want)
			}
		})
	}
}

func TestNamespaceFilter(t *testing.T) {
	existing := []string{"default", "kube-system", "shop", "team-a", "team-b"}
	for _, tc := range []struct {
		name    string
		filter  NamespaceFilter
		want    string
		wantErr string
	}{
		{name: "all", want: "default kube-system shop team-a team-b"},
		{name: "glob", filter: NamespaceFilter{Include: []string{"team-*"}}, want: "team-a team-b"},
		{name: "glob and exclude", filter: NamespaceFilter{Include: []string{"*"}, Exclude: []string{"kube-*", "default"}}, want: "shop team-a team-b"},
		{name: "glob matching nothing is fine", filter: NamespaceFilter{Include: []string{"prod-*"}}, want: ""},
		{name: "missing literal is an error", filter: NamespaceFilter{Include: []string{"shop", "shpo"}}, wantErr: `namespace "shpo" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.filter.Resolve(existing)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}
	if err := (NamespaceFilter{Include: []string{"[bad"}}).Validate(); err == nil {
		t.Fatal("a malformed glob was accepted")
	}
}
