package schedule

import (
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

func ruleFor(rules []rbacv1.PolicyRule, resource string) *rbacv1.PolicyRule {
	for i, r := range rules {
		if r.Resources[0] == resource {
			return &rules[i]
		}
	}
	return nil
}

// TestRules: the list of every type stands for the doctor's few list rights and takes the list
// verb off the other rules (else taking one of them away would change nothing); cluster-scoped
// rights go to the ClusterRole; -A puts everything there.
func TestRules(t *testing.T) {
	c := Config{Needs: []string{"resources", "needed-cluster", "volumes", "snapshots"}}
	cluster, ns := c.Rules()
	if len(ns) == 0 || ns[0].Resources[0] != "*" || ns[0].Verbs[0] != "list" {
		t.Fatalf("namespaced rules start with %v", ns)
	}
	for _, r := range ns[1:] {
		for _, v := range r.Verbs {
			if v == "list" {
				t.Errorf("rule %v lists: the wildcard grants it", r)
			}
		}
	}
	if p := ruleFor(ns, "pods"); p == nil || strings.Join(p.Verbs, ",") != "watch,delete" {
		t.Errorf("pods: %v", p)
	}
	// The namespaces are named: the runs read them (get, in their Role) and list none.
	if r := ruleFor(cluster, "namespaces"); r != nil {
		t.Errorf("cluster: %v", cluster)
	}
	if r := ruleFor(cluster, "persistentvolumes"); r == nil || strings.Join(r.Verbs, ",") != "get,patch" {
		t.Errorf("persistentvolumes: %v", r)
	}
	if ruleFor(cluster, "*") != nil {
		t.Errorf("a namespaced schedule may list every type cluster-wide: %v", cluster)
	}

	c.ClusterWide = true
	cluster, ns = c.Rules()
	// The wildcard lists every type; namespaces are also read one by one (get).
	if ns != nil || cluster[0].Resources[0] != "*" || strings.Join(ruleFor(cluster, "namespaces").Verbs, ",") != "get" || ruleFor(cluster, "jobs") == nil {
		t.Errorf("-A: cluster %v, namespaced %v", cluster, ns)
	}

	// Resources only, no cluster objects: a Role that lists (and gets its namespace), a
	// ClusterRole that lists namespaces.
	cluster, ns = Config{Needs: []string{"resources", "namespaces"}}.Rules()
	if len(ns) != 2 || len(cluster) != 1 || cluster[0].Resources[0] != "namespaces" {
		t.Errorf("resources only: cluster %v, namespaced %v", cluster, ns)
	}
}

// TestRulesOfVolumeGroups: the group needs grant the VolumeGroupSnapshot calls create makes (the
// wildcard lists them) and, for --volume-groups=auto, patch on claims for their temporary label.
func TestRulesOfVolumeGroups(t *testing.T) {
	cluster, ns := Config{Needs: []string{"resources", "volumes", "snapshots", "groups", "auto-groups"}}.Rules()
	for _, want := range []struct {
		rules           []rbacv1.PolicyRule
		resource, verbs string
	}{
		{ns, "volumegroupsnapshots", "get,watch,create,delete"},
		{ns, "persistentvolumeclaims", "get,create,patch,delete"},
		{cluster, "volumegroupsnapshotclasses", "list"},
		{cluster, "volumegroupsnapshotcontents", "patch"},
	} {
		r := ruleFor(want.rules, want.resource)
		if r == nil || strings.Join(r.Verbs, ",") != want.verbs || (want.resource != "persistentvolumeclaims" && r.APIGroups[0] != "groupsnapshot.storage.k8s.io") {
			t.Errorf("%s: %v, want verbs %s", want.resource, r, want.verbs)
		}
	}
	_, ns = Config{Needs: []string{"resources", "volumes", "snapshots"}}.Rules()
	if r := ruleFor(ns, "volumegroupsnapshots"); r != nil || strings.Contains(strings.Join(ruleFor(ns, "persistentvolumeclaims").Verbs, ","), "patch") {
		t.Errorf("without groups: %v", ns)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "nightly", Namespace: "ops", Cron: "0 2 * * *", Secret: "pvbackup-nightly", Namespaces: []string{"shop"}, Deadline: time.Hour}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Name = "Nightly" }, `schedule name "Nightly"`},
		{func(c *Config) { c.Name = strings.Repeat("n", 53) }, "at most 52"},
		{func(c *Config) { c.Cron = "@hourly 5" }, `--cron "@hourly 5"`},
		{func(c *Config) { c.Cron = "61 * * * *" }, "above maximum"},
		{func(c *Config) { c.TimeZone = "Local" }, "not a time zone"},
		{func(c *Config) { c.Secret = "Bad_Secret" }, `--secret "Bad_Secret"`},
		{func(c *Config) { c.Namespaces = nil }, "backs up no namespace"},
		{func(c *Config) { c.Deadline = 0 }, "--deadline positive"},
	} {
		c := ok
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
	for _, spec := range []string{"@daily", "@weekly", "*/15 2-4 * * 1-5", "0 2 1 * *"} {
		if err := ValidateCron(spec); err != nil {
			t.Errorf("%s: %v", spec, err)
		}
	}
}
