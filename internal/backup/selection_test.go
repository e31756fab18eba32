package backup

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// labelled adds labelled objects to the fake cluster: configmaps a (app=web), b (tier=db),
// c (app=web, tier=db), d (none), x (velero exclusion label), y (our exclusion label, and app=web),
// and a namespace "skipme" labelled for exclusion with a configmap in it.
func labelledCluster(t *testing.T) Deps {
	dyn, disc := fakeCluster()
	add := func(apiVersion, kind, ns, name string, lbls map[string]any) {
		o := obj(apiVersion, kind, ns, name, nil)
		if lbls != nil {
			o.Object["metadata"].(map[string]any)["labels"] = lbls
		}
		if err := dyn.Tracker().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	add("v1", "ConfigMap", "shop", "a", map[string]any{"app": "web"})
	add("v1", "ConfigMap", "shop", "b", map[string]any{"tier": "db"})
	add("v1", "ConfigMap", "shop", "c", map[string]any{"app": "web", "tier": "db"})
	add("v1", "ConfigMap", "shop", "d", nil)
	add("v1", "ConfigMap", "shop", "x", map[string]any{"velero.io/exclude-from-backup": "true"})
	add("v1", "ConfigMap", "shop", "y", map[string]any{"pvbackup.io/exclude-from-backup": "true", "app": "web"})
	add("v1", "ConfigMap", "shop", "z", map[string]any{"pvbackup.io/exclude-from-backup": "false"})
	add("v1", "Namespace", "", "skipme", map[string]any{"velero.io/exclude-from-backup": "true"})
	add("v1", "ConfigMap", "skipme", "inside", nil)
	add("storage.k8s.io/v1", "StorageClass", "", "excluded-sc", map[string]any{"pvbackup.io/exclude-from-backup": "true"})
	return Deps{Dynamic: dyn, Discovery: disc}
}

// counts renders the plan's counts "resource ns=n" sorted, for comparison.
func counts(m *catalog.Manifest) string {
	var out []string
	for _, c := range m.Resources {
		if c.Count == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s=%d", c.Resource, c.Namespace, c.Count))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func excludedList(m *catalog.Manifest) string {
	var out []string
	for _, e := range m.Excluded {
		out = append(out, e.Resource+" "+strings.TrimPrefix(e.Namespace+"/"+e.Name, "/")+" "+e.Label)
	}
	return strings.Join(out, "; ")
}

func TestSelectionFlags(t *testing.T) {
	shop := selection.NamespaceFilter{Include: []string{"shop"}}
	cms := selection.ResourceFilter{Include: []string{"configmaps"}}
	for _, tc := range []struct {
		name     string
		cfg      Config
		want     string // counts
		excluded string
		err      string
	}{
		{name: "exclusion labels, both spellings; false is not excluded", cfg: Config{Namespaces: shop, Resources: cms, ClusterResources: ClusterNone},
			want: "v1/configmaps shop=6", excluded: "configmaps shop/x velero.io/exclude-from-backup=true; configmaps shop/y pvbackup.io/exclude-from-backup=true"},
		{name: "a selector does not bring an excluded object back", cfg: Config{Namespaces: shop, Resources: cms, ClusterResources: ClusterNone, LabelSelector: "app=web"},
			want: "v1/configmaps shop=2", excluded: "configmaps shop/y pvbackup.io/exclude-from-backup=true"},
		{name: "or-selector takes the union once", cfg: Config{Namespaces: shop, Resources: cms, ClusterResources: ClusterNone, OrSelectors: []string{"app=web", "tier=db"}},
			want: "v1/configmaps shop=3", excluded: "configmaps shop/y pvbackup.io/exclude-from-backup=true"},
		{name: "or-selector with set-based terms", cfg: Config{Namespaces: shop, Resources: cms, ClusterResources: ClusterNone, OrSelectors: []string{"tier in (db)", "!app,!tier"}},
			want: "v1/configmaps shop=5", excluded: "configmaps shop/x velero.io/exclude-from-backup=true"},
		{name: "selector and or-selector refused", cfg: Config{Namespaces: shop, LabelSelector: "a=b", OrSelectors: []string{"c=d"}}, err: "--selector and --or-selector cannot be used together"},
		{name: "labelled namespace left out with its contents", cfg: Config{Resources: cms, ClusterResources: ClusterNone},
			want: "v1/configmaps other=1; v1/configmaps shop=6", excluded: "configmaps shop/x velero.io/exclude-from-backup=true; configmaps shop/y pvbackup.io/exclude-from-backup=true; namespaces skipme velero.io/exclude-from-backup=true"},
		{name: "labelled namespace named literally: left out, no error", cfg: Config{Namespaces: selection.NamespaceFilter{Include: []string{"skipme"}}, Resources: cms, ClusterResources: ClusterNone},
			want: "", excluded: "namespaces skipme velero.io/exclude-from-backup=true"},
		{name: "labelled cluster object left out of a whole-cluster backup", cfg: Config{Resources: selection.ResourceFilter{Include: []string{"storageclasses"}}, ClusterResources: ClusterAll},
			want: "storage.k8s.io/v1/storageclasses =2", excluded: "namespaces skipme velero.io/exclude-from-backup=true; storageclasses.storage.k8s.io excluded-sc pvbackup.io/exclude-from-backup=true"},
		// Velero's scoped filters.
		{name: "scoped: namespaced include, cluster objects the selection needs", cfg: Config{Namespaces: shop, Scoped: &selection.ScopedFilter{IncludeNamespaced: []string{"persistentvolumeclaims", "rolebindings"}}},
			want: "rbac.authorization.k8s.io/v1/clusterroles =1; rbac.authorization.k8s.io/v1/rolebindings shop=1; storage.k8s.io/v1/storageclasses =1; v1/namespaces =1; v1/persistentvolumeclaims shop=1; v1/persistentvolumes =1"},
		{name: "scoped: cluster exclude keeps needed objects out too", cfg: Config{Namespaces: shop, Scoped: &selection.ScopedFilter{IncludeNamespaced: []string{"persistentvolumeclaims"}, ExcludeCluster: []string{"storageclasses", "namespaces"}}},
			want: "v1/persistentvolumeclaims shop=1; v1/persistentvolumes =1"},
		{name: "scoped: cluster include lists whole", cfg: Config{Namespaces: shop, Scoped: &selection.ScopedFilter{IncludeNamespaced: []string{"widgets"}, IncludeCluster: []string{"storageclasses"}}},
			want: "apiextensions.k8s.io/v1/customresourcedefinitions =1; example.com/v1/widgets shop=1; storage.k8s.io/v1/storageclasses =2; v1/namespaces =1", excluded: "storageclasses.storage.k8s.io excluded-sc pvbackup.io/exclude-from-backup=true"},
		{name: "scoped: exclude all cluster-scoped", cfg: Config{Namespaces: shop, Scoped: &selection.ScopedFilter{IncludeNamespaced: []string{"widgets", "pvc"}, ExcludeCluster: []string{"*"}}},
			want: "example.com/v1/widgets shop=1; v1/persistentvolumeclaims shop=1"},
		{name: "scoped: whole cluster takes every cluster resource but transient ones", cfg: Config{Scoped: &selection.ScopedFilter{ExcludeNamespaced: []string{}}},
			want:     "apiextensions.k8s.io/v1/customresourcedefinitions =1; example.com/v1/widgets shop=1; rbac.authorization.k8s.io/v1/clusterroles =2; rbac.authorization.k8s.io/v1/rolebindings shop=1; storage.k8s.io/v1/storageclasses =2; v1/configmaps other=1; v1/configmaps shop=6; v1/namespaces =2; v1/persistentvolumeclaims shop=1; v1/persistentvolumes =2",
			excluded: "configmaps shop/x velero.io/exclude-from-backup=true; configmaps shop/y pvbackup.io/exclude-from-backup=true; namespaces skipme velero.io/exclude-from-backup=true; storageclasses.storage.k8s.io excluded-sc pvbackup.io/exclude-from-backup=true"},
		{name: "scoped: namespaced exclude makes it partial: no whole cluster", cfg: Config{Scoped: &selection.ScopedFilter{ExcludeNamespaced: []string{"configmaps", "rolebindings", "widgets"}}},
			want: "storage.k8s.io/v1/storageclasses =1; v1/namespaces =2; v1/persistentvolumeclaims shop=1; v1/persistentvolumes =1", excluded: "namespaces skipme velero.io/exclude-from-backup=true"},
		{name: "scoped: a name in the wrong scope", cfg: Config{Scoped: &selection.ScopedFilter{IncludeNamespaced: []string{"storageclasses"}}}, err: "--include-namespace-scoped-resources storageclasses: storageclasses is cluster-scoped"},
		{name: "scoped: unknown name", cfg: Config{Scoped: &selection.ScopedFilter{ExcludeCluster: []string{"storagclasses"}}}, err: `unknown resource type "storagclasses"`},
		// Velero's includeExcludePolicy: the flags win where they name the same resource.
		{name: "policy filters merged under the flags", cfg: Config{Namespaces: shop,
			Scoped:       &selection.ScopedFilter{IncludeNamespaced: []string{"configmaps"}},
			PolicyScoped: &selection.ScopedFilter{ExcludeNamespaced: []string{"configmap", "widgets"}, IncludeNamespaced: []string{"pvc"}, IncludeCluster: []string{"crd"}}},
			want:     "apiextensions.k8s.io/v1/customresourcedefinitions =1; storage.k8s.io/v1/storageclasses =1; v1/configmaps shop=6; v1/namespaces =1; v1/persistentvolumeclaims shop=1; v1/persistentvolumes =1",
			excluded: "configmaps shop/x velero.io/exclude-from-backup=true; configmaps shop/y pvbackup.io/exclude-from-backup=true"},
		{name: "policy filters with old-style filters refused", cfg: Config{PolicyScoped: &selection.ScopedFilter{IncludeCluster: []string{"crd"}}}, err: "includeExcludePolicy cannot be used with --include-resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := labelledCluster(t)
			tc.cfg.Name, tc.cfg.DryRun = "b", true
			res, err := Run(context.Background(), d, tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := counts(res.Manifest); got != tc.want {
				t.Errorf("counts\n got %s\nwant %s", got, tc.want)
			}
			if got := excludedList(res.Manifest); got != tc.excluded {
				t.Errorf("excluded\n got %s\nwant %s", got, tc.excluded)
			}
		})
	}
}

// A resource type with no objects keeps its zero count in the manifest (-o json shows every
// count; text output folds them into the summary).
func TestZeroCountsRecorded(t *testing.T) {
	d := labelledCluster(t)
	res, err := Run(context.Background(), d, Config{Name: "b", DryRun: true, ClusterResources: ClusterNone,
		Namespaces: selection.NamespaceFilter{Include: []string{"other"}}, Resources: selection.ResourceFilter{Include: []string{"widgets", "configmaps"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Manifest.Resources {
		got = append(got, fmt.Sprintf("%s %s=%d", c.Resource, c.Namespace, c.Count))
	}
	if strings.Join(got, "; ") != "example.com/v1/widgets =0; v1/configmaps other=1" {
		t.Fatalf("counts: %v", got)
	}
}
