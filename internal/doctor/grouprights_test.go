package doctor

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// groupCluster is a cluster that serves VolumeGroupSnapshots (v1beta2).
func groupCluster(t *testing.T) *Deps {
	d := cluster(t, false)
	disc := d.Discovery.(*fakediscovery.FakeDiscovery)
	disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: groupSnapshotGroup + "/v1beta2", APIResources: []metav1.APIResource{
		{Name: "volumegroupsnapshots", Namespaced: true, Kind: "VolumeGroupSnapshot"},
		{Name: "volumegroupsnapshotcontents", Kind: "VolumeGroupSnapshotContent"},
		{Name: "volumegroupsnapshotclasses", Kind: "VolumeGroupSnapshotClass"},
	}})
	return d
}

// TestGroupRights: where VolumeGroupSnapshots are served, a user who may not create them nor patch
// claims (the label of --volume-groups=auto) is warned, with what each right is for and the Role
// that grants them; the snapshot rights they have still pass. Without the group API the group
// rights are not asked for at all.
func TestGroupRights(t *testing.T) {
	withGroups := func() *Deps { return groupCluster(t) }
	cfg := func() *Config {
		return &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}, Mode: volumes.ModeSnapshotMove}
	}
	d := withGroups()
	allow(d, "patch persistentvolumeclaims", "create volumegroupsnapshots")
	got := checkRights(context.Background(), d, cfg())
	shop := got[len(got)-1]
	for _, want := range []string{
		"needed only for volume groups",
		"create volumegroupsnapshots.groupsnapshot.storage.k8s.io (create: cut a volume group at one instant)",
		"patch persistentvolumeclaims (create --volume-groups=auto: label the members " + volumes.LabelGroupRun,
	} {
		if shop.Check != "rights in shop" || shop.Status != Warn || !strings.Contains(shop.Detail, want) {
			t.Errorf("lacking group rights: %+v, want a warning with %q", shop, want)
		}
	}
	if !strings.Contains(shop.Grant, "  - groupsnapshot.storage.k8s.io\n  resources:\n  - volumegroupsnapshots\n  verbs:\n  - create\n") ||
		!strings.Contains(shop.Grant, "  resources:\n  - persistentvolumeclaims\n  verbs:\n  - patch\n") {
		t.Errorf("grant:\n%s", shop.Grant)
	}

	d = withGroups()
	allow(d, "patch volumegroupsnapshotcontents")
	got = checkRights(context.Background(), d, cfg())
	if c := got[0]; c.Check != "rights (cluster)" || c.Status != Warn || !strings.Contains(c.Detail, "patch volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io (create: delete the group's storage snapshot with it)") {
		t.Errorf("lacking patch on group contents: %+v", c)
	}

	// A cluster without the group API: not one group right is asked for.
	d = cluster(t, false)
	asked := allow(d)
	for _, r := range checkRights(context.Background(), d, cfg()) {
		if r.Status != OK {
			t.Errorf("without the group API: %+v", r)
		}
	}
	for _, ra := range *asked {
		if ra.Group == groupSnapshotGroup || (ra.Verb == "patch" && ra.Resource == "persistentvolumeclaims") {
			t.Errorf("asked for %s %s.%s on a cluster without group snapshots", ra.Verb, ra.Resource, ra.Group)
		}
	}
	// fs volumes cut no group.
	d = withGroups()
	asked = allow(d)
	checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}, Mode: volumes.ModeFS})
	for _, ra := range *asked {
		if ra.Group == groupSnapshotGroup {
			t.Errorf("fs backup asked for %s %s", ra.Verb, ra.Resource)
		}
	}
}

// create's preflight of a run that cuts volume groups requires the rights doctor checks for them
// (doctor only warns: it does not know whether a run will cut groups): a missing one fails the
// preflight, before anything is created, naming the right and what it is for. A run that cuts no
// group does not ask for them; patch on claims only for an automatic group.
func TestCreatePreflightGroupRights(t *testing.T) {
	ctx := context.Background()
	vols := []catalog.Volume{{Namespace: "shop", PVC: "data", Mode: string(volumes.ModeSnapshotMove)}}
	rightsIn := func(rep *Report) Result {
		for _, r := range rep.Checks {
			if r.Check == "rights in shop" {
				return r
			}
		}
		return Result{}
	}
	for _, tc := range []struct {
		name         string
		denied       []string
		groups, auto bool
		want         string // "" = the rights pass
	}{
		{"a group, no right to create group snapshots", []string{"create volumegroupsnapshots"}, true, false,
			"create volumegroupsnapshots.groupsnapshot.storage.k8s.io (create: cut a volume group at one instant)"},
		{"an automatic group, no right to label claims", []string{"patch persistentvolumeclaims"}, true, true,
			"patch persistentvolumeclaims (create --volume-groups=auto: label the members " + volumes.LabelGroupRun},
		{"a group, no right to label claims: not needed", []string{"patch persistentvolumeclaims"}, true, false, ""},
		{"no group: no group right needed", []string{"create volumegroupsnapshots", "list volumegroupsnapshotclasses"}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := groupCluster(t)
			asked := allow(d, tc.denied...)
			rep := CreatePreflight(ctx, *d, Config{}, CreatePlan{Namespaces: []string{"shop"}, Volumes: vols, Groups: tc.groups, AutoGroups: tc.auto})
			r := rightsIn(rep)
			switch {
			case tc.want != "" && (r.Status != Fail || rep.Status != Fail || !strings.Contains(r.Detail, tc.want) || strings.Contains(r.Detail, "needed only for")):
				t.Errorf("rights in shop: %+v (report %s); want a failure naming %q", r, rep.Status, tc.want)
			case tc.want == "" && r.Status != OK:
				t.Errorf("rights in shop: %+v; want them to pass", r)
			}
			if tc.groups {
				return
			}
			for _, ra := range *asked {
				if ra.Group == groupSnapshotGroup {
					t.Errorf("a run without groups asked for %s %s", ra.Verb, ra.Resource)
				}
			}
		})
	}
}
