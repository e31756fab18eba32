package volumes

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// Group snapshots (VolumeGroupSnapshot, groupsnapshot.storage.k8s.io): claims of one group are cut
// at one instant by their CSI driver, then each member goes through snapshot-move as a single
// snapshot does. The API is used through the dynamic client: external-snapshotter's client/v6,
// which this module uses for VolumeSnapshots, has only the v1alpha1 group types, and client/v8
// would bring a second copy of the snapshot types into one scheme.

// Labels that put a claim into a group (the value names the group), in order of precedence after
// --volume-group-by.
const (
	LabelVolumeGroup       = "pvbackup.io/volume-group"
	LabelVolumeGroupVelero = "velero.io/volume-group"
	// AnnotationDefaultGroupClass marks a driver's default VolumeGroupSnapshotClass.
	AnnotationDefaultGroupClass = "groupsnapshot.storage.kubernetes.io/is-default-class"
)

// GroupSnapshotGroup is the API group of VolumeGroupSnapshots.
const GroupSnapshotGroup = "groupsnapshot.storage.k8s.io"

// GroupSnapshotVersions are the versions this tool speaks, preferred first (v1beta1 is gone from
// 1.34 clusters and differs in its status).
var GroupSnapshotVersions = []string{"v1", "v1beta2"}

// GroupOf is the group of a claim: the label key and value that select its members (empty when
// it is in none). --volume-group-by (groupBy) comes first, then pvbackup.io/volume-group, then
// Velero's velero.io/volume-group.
func GroupOf(pvc *corev1.PersistentVolumeClaim, groupBy string) (key, value string) {
	for _, k := range []string{groupBy, LabelVolumeGroup, LabelVolumeGroupVelero} {
		if v := pvc.Labels[k]; k != "" && v != "" {
			return k, v
		}
	}
	return "", ""
}

// GroupFacts are what group decisions depend on, read once per backup.
type GroupFacts struct {
	// Version is the served VolumeGroupSnapshot version ("" when none this tool speaks is served).
	Version string
	// Classes maps a CSI driver to its chosen VolumeGroupSnapshotClass.
	Classes map[string]string
	// Drivers maps every VolumeGroupSnapshotClass to its driver.
	Drivers map[string]string
}

// UseClasses makes the classes named (--volume-group-snapshot-class) their drivers' choice, before
// the default; an unknown name, or two for one driver, is an error.
func (g *GroupFacts) UseClasses(names []string) error {
	chosen := map[string]string{}
	for _, n := range names {
		d, ok := g.Drivers[n]
		switch {
		case g.Version == "":
			return fmt.Errorf("--volume-group-snapshot-class %s: the cluster serves no VolumeGroupSnapshot API (%s v1 or v1beta2); drop the flag or enable group snapshots", n, GroupSnapshotGroup)
		case !ok:
			return fmt.Errorf("--volume-group-snapshot-class %s: no such VolumeGroupSnapshotClass (see kubectl get volumegroupsnapshotclasses)", n)
		case chosen[d] != "" && chosen[d] != n:
			return fmt.Errorf("--volume-group-snapshot-class %s and %s are both for CSI driver %s: give one per driver", chosen[d], n, d)
		}
		chosen[d] = n
	}
	for d, n := range chosen {
		g.Classes[d] = n
	}
	return nil
}

// Resource is the GroupVersionResource of a group snapshot kind (volumegroupsnapshots, ...).
func (g *GroupFacts) Resource(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: g.Version, Resource: resource}
}

// GroupSnapshotVersion finds the served VolumeGroupSnapshot version, "" when none.
func GroupSnapshotVersion(disc discovery.DiscoveryInterface) (string, error) {
	for _, v := range GroupSnapshotVersions {
		res, err := disc.ServerResourcesForGroupVersion(GroupSnapshotGroup + "/" + v)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("discover %s/%s: %w", GroupSnapshotGroup, v, err)
		}
		for _, r := range res.APIResources {
			if r.Name == "volumegroupsnapshots" {
				return v, nil
			}
		}
	}
	return "", nil
}

// ReadGroupFacts reads the served version and the VolumeGroupSnapshotClasses: per driver the one
// annotated default, else its only one.
func ReadGroupFacts(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface) (*GroupFacts, error) {
	g := &GroupFacts{Classes: map[string]string{}, Drivers: map[string]string{}}
	v, err := GroupSnapshotVersion(disc)
	if err != nil || v == "" || dyn == nil {
		return g, err
	}
	g.Version = v
	list, err := dyn.Resource(g.Resource("volumegroupsnapshotclasses")).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list VolumeGroupSnapshotClasses (%s/%s): %w", GroupSnapshotGroup, v, err)
	}
	byDriver := map[string][]string{}
	for _, c := range list.Items {
		driver, _ := c.Object["driver"].(string)
		if c.GetAnnotations()[AnnotationDefaultGroupClass] == "true" {
			g.Classes[driver] = c.GetName()
		}
		byDriver[driver] = append(byDriver[driver], c.GetName())
		g.Drivers[c.GetName()] = driver
	}
	for d, names := range byDriver {
		if g.Classes[d] == "" && len(names) == 1 {
			g.Classes[d] = names[0]
		}
	}
	return g, nil
}

// VolumeGroup is the claims of one namespace cut together.
type VolumeGroup struct {
	Namespace, Key, Value string
	Driver, Class         string
	// Auto: the group of --volume-groups=auto (Key is LabelGroupRun, set on the members for the cut).
	Auto    bool
	Members []int // indexes into the plan
}

// Name is how the group is shown: namespace/key=value, or namespace/auto:driver.
func (g *VolumeGroup) Name() string {
	if g.Auto {
		return g.Namespace + "/auto:" + g.Driver
	}
	return g.Namespace + "/" + g.Key + "=" + g.Value
}

// Why says why its members are in the group.
func (g *VolumeGroup) Why() string {
	if g.Auto {
		return autoWhy(g)
	}
	return "by the label " + g.Key + "=" + g.Value
}

// GroupChoice is how claims are put into groups: by their labels (GroupOf, By first) and, with
// Auto, every other one by namespace and CSI driver, labelled for the run (Backup, RunID).
type GroupChoice struct {
	By            string
	Auto          bool
	Backup, RunID string
}

func (c *Config) groupChoice() GroupChoice {
	return GroupChoice{By: c.VolumeGroupBy, Auto: c.VolumeGroups == GroupsAuto, Backup: c.Backup, RunID: c.RunID}
}

// groupKey is the group of a claim: its label's, else with Auto its namespace's and driver's.
func (c GroupChoice) groupKey(pvc *corev1.PersistentVolumeClaim, driver string) (key, value string, auto bool) {
	if key, value = GroupOf(pvc, c.By); key != "" || !c.Auto {
		return key, value, false
	}
	return LabelGroupRun, AutoGroupValue(c.Backup, c.RunID, driver), true
}

// planGroups puts the plan's snapshot-move volumes that are in a group (GroupChoice) into
// VolumeGroups, per namespace, label and driver. A volume whose group cannot be cut is left alone
// with a warning saying why: no group API, a driver without a VolumeGroupSnapshotClass, members
// of several drivers, or snapshot mode. An automatic group of one claim is no group.
func planGroups(plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, choice GroupChoice, g *GroupFacts) []*VolumeGroup {
	groups := map[string]*VolumeGroup{}
	for i := range plan {
		v := &plan[i]
		if v.Status != "" || (Mode(v.Mode) != ModeSnapshotMove && Mode(v.Mode) != ModeSnapshot) {
			continue
		}
		key, value, auto := choice.groupKey(claims[v.Namespace+"/"+v.PVC], v.Driver)
		if key == "" {
			continue
		}
		id := v.Namespace + "/" + key + "=" + value
		gr := groups[id]
		if gr == nil {
			gr = &VolumeGroup{Namespace: v.Namespace, Key: key, Value: value, Driver: v.Driver, Class: g.Classes[v.Driver], Auto: auto}
			groups[id] = gr
		}
		v.VolumeGroup = gr.Name()
		if why := cutAlone(v, gr, g); why != "" {
			v.Reason += "; cut alone, not with group " + gr.Name() + ": " + why
			v.Warnings = append(v.Warnings, fmt.Sprintf("PVC %s/%s of volume group %s is snapshotted alone, not at one instant with the group: %s", v.Namespace, v.PVC, gr.Name(), why))
			continue
		}
		gr.Members = append(gr.Members, i)
	}
	out := make([]*VolumeGroup, 0, len(groups))
	for _, gr := range groups {
		if gr.Auto && len(gr.Members) == 1 {
			v := &plan[gr.Members[0]]
			v.VolumeGroup = ""
			v.Reason += fmt.Sprintf("; cut alone: the only claim of CSI driver %s in namespace %s for --volume-groups=auto", gr.Driver, gr.Namespace)
			continue
		}
		if len(gr.Members) > 0 {
			out = append(out, gr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// cutAlone says why volume v cannot be cut with its group gr ("" when it can).
func cutAlone(v *catalog.Volume, gr *VolumeGroup, g *GroupFacts) string {
	switch {
	case Mode(v.Mode) == ModeSnapshot:
		return "snapshot mode keeps its VolumeSnapshot, which a group's deletion would take with it"
	case g.Version == "":
		return "the cluster serves no VolumeGroupSnapshot API (" + GroupSnapshotGroup + " v1 or v1beta2)"
	case v.Driver != gr.Driver:
		return fmt.Sprintf("its driver %s is not the group's %s", v.Driver, gr.Driver)
	case gr.Class == "":
		return "CSI driver " + v.Driver + " has no VolumeGroupSnapshotClass (or several, none the default)"
	}
	return ""
}
