package doctor

import (
	"context"
	"fmt"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Right is one API call the plugin makes: a verb on a resource, namespaced or cluster-wide, and
// what needs it. The list follows what create and restore call (internal/backup, restore,
// volumes, hooks): a missing right fails there, half-way, with objects already created.
type Right struct {
	Verb, Group, Resource, Subresource string
	Cluster                            bool
	// Need is what the right serves: "namespaces" (list them, for patterns or -A), "resources"
	// (list the selected objects), "needed-cluster"
	// (fetch the cluster objects they refer to: create --include-cluster-resources=auto on some
	// namespaces), "volumes" (movers), "snapshots", "groups" (VolumeGroupSnapshots of volume
	// groups), "auto-groups" (--volume-groups=auto), "hooks", "restore", "prune" (remove the
	// VolumeSnapshots snapshot mode kept).
	Need string
	// Why names the command and the step, for the report.
	Why string
	// Optional, when set, says what the right is only for: without it the check warns.
	Optional string
}

func (r Right) groupResource() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

func (r Right) String() string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.Group != "" {
		res += "." + r.Group
	}
	return r.Verb + " " + res
}

const snapGroup = "snapshot.storage.k8s.io"

// maxRightsNamespaces bounds the namespaces whose rights are checked one by one.
const maxRightsNamespaces = 10

// Rights are every right create, restore and prune need: every call they make, with its verb
// (a wait is a list and a watch). schedule print grants exactly these (internal/schedule), and a
// test removes each of its rules in turn. A namespace admin (the `admin` ClusterRole bound in
// their namespace) has every namespaced one but those on VolumeSnapshots and
// VolumeGroupSnapshots, and none of the cluster-scoped ones: they back up and restore their
// namespace with fs volumes (or none), named by --include-namespaces; snapshot modes need the
// rights of needs "snapshots" and "groups" on top.
var Rights = []Right{
	{Verb: "list", Resource: "namespaces", Cluster: true, Need: "namespaces", Why: "create: resolve --include-namespaces patterns, or every namespace"},
	{Verb: "get", Resource: "namespaces", Need: "resources", Why: "create, restore: the selected namespaces"},
	{Verb: "list", Resource: "configmaps", Need: "resources", Why: "create: back up resources"},
	{Verb: "list", Resource: "secrets", Need: "resources", Why: "create: back up resources"},
	{Verb: "list", Resource: "services", Need: "resources", Why: "create: back up resources"},
	{Verb: "list", Group: "apps", Resource: "deployments", Need: "resources", Why: "create: back up resources"},
	{Verb: "list", Group: "apps", Resource: "statefulsets", Need: "resources", Why: "create: back up resources"},
	{Verb: "list", Resource: "persistentvolumeclaims", Need: "resources", Why: "create: back up resources, find the volumes"},

	{Verb: "get", Resource: "persistentvolumes", Cluster: true, Need: "needed-cluster", Why: "create: the PVs of the selected claims"},
	{Verb: "get", Group: "storage.k8s.io", Resource: "storageclasses", Cluster: true, Need: "needed-cluster", Why: "create: the StorageClasses of the selected claims"},
	{Verb: "list", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Cluster: true, Need: "needed-cluster", Why: "create: tell custom resources apart"},
	{Verb: "get", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Cluster: true, Need: "needed-cluster", Why: "create: the CRDs of the selected custom resources"},
	{Verb: "get", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Cluster: true, Need: "needed-cluster", Why: "create: the ClusterRoles of the selected RoleBindings"},

	{Verb: "list", Resource: "pods", Need: "volumes", Why: "create: place fs movers, follow movers"},
	{Verb: "watch", Resource: "pods", Need: "volumes", Why: "create, restore: follow movers"},
	{Verb: "delete", Resource: "pods", Need: "volumes", Why: "create, restore: remove finished mover pods"},
	{Verb: "get", Resource: "pods", Subresource: "log", Need: "volumes", Why: "create, restore: mover progress and errors"},
	{Verb: "list", Resource: "events", Need: "volumes", Why: "create, restore: follow events from now on (the list's version)"},
	{Verb: "watch", Resource: "events", Need: "volumes", Why: "create, restore: fail fast with the reason of a stuck step"},
	{Verb: "create", Resource: "secrets", Need: "volumes", Why: "create, restore: the movers' temporary Secret"},
	{Verb: "delete", Resource: "secrets", Need: "volumes", Why: "create, restore: remove the temporary Secret"},
	{Verb: "create", Group: "batch", Resource: "jobs", Need: "volumes", Why: "create, restore: mover Jobs"},
	{Verb: "delete", Group: "batch", Resource: "jobs", Need: "volumes", Why: "create, restore: remove mover Jobs"},
	{Verb: "get", Resource: "persistentvolumeclaims", Need: "volumes", Why: "create: temporary PVCs"},
	{Verb: "get", Resource: "persistentvolumes", Cluster: true, Need: "snapshots", Why: "create: the CSI driver of each volume"},
	{Verb: "patch", Resource: "persistentvolumes", Cluster: true, Need: "snapshots", Why: "create: delete the storage of temporary PVCs"},
	{Verb: "create", Resource: "persistentvolumeclaims", Need: "snapshots", Why: "create: temporary PVCs from snapshots"},
	{Verb: "delete", Resource: "persistentvolumeclaims", Need: "snapshots", Why: "create: remove temporary PVCs"},

	{Verb: "list", Group: snapGroup, Resource: "volumesnapshotclasses", Cluster: true, Need: "snapshots", Why: "create: choose a VolumeSnapshotClass"},
	{Verb: "create", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: snapshot-move, snapshot"},
	{Verb: "list", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: wait until snapshots are ready, --keep-snapshots"},
	{Verb: "get", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: wait until snapshots are ready"},
	{Verb: "watch", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: wait until snapshots are ready"},
	{Verb: "get", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: remove temporary snapshots"},
	{Verb: "delete", Group: snapGroup, Resource: "volumesnapshots", Need: "snapshots", Why: "create: remove temporary snapshots"},
	{Verb: "get", Group: snapGroup, Resource: "volumesnapshotcontents", Cluster: true, Need: "snapshots", Why: "create: the snapshot handle, deletion policy"},
	{Verb: "patch", Group: snapGroup, Resource: "volumesnapshotcontents", Cluster: true, Need: "snapshots", Why: "create: delete the storage snapshot with its VolumeSnapshot"},

	{Verb: "list", Group: groupSnapshotGroup, Resource: "volumegroupsnapshotclasses", Cluster: true, Need: "groups", Why: "create: choose a VolumeGroupSnapshotClass per CSI driver (else groups are cut per claim)"},
	{Verb: "create", Group: groupSnapshotGroup, Resource: "volumegroupsnapshots", Need: "groups", Why: "create: cut a volume group at one instant"},
	{Verb: "list", Group: groupSnapshotGroup, Resource: "volumegroupsnapshots", Need: "groups", Why: "create: wait until the group is cut and ready"},
	{Verb: "watch", Group: groupSnapshotGroup, Resource: "volumegroupsnapshots", Need: "groups", Why: "create: wait until the group is cut and ready"},
	{Verb: "get", Group: groupSnapshotGroup, Resource: "volumegroupsnapshots", Need: "groups", Why: "create: remove the group snapshot"},
	{Verb: "delete", Group: groupSnapshotGroup, Resource: "volumegroupsnapshots", Need: "groups", Why: "create: remove the group snapshot"},
	{Verb: "patch", Group: groupSnapshotGroup, Resource: "volumegroupsnapshotcontents", Cluster: true, Need: "groups", Why: "create: delete the group's storage snapshot with it"},
	{Verb: "patch", Resource: "persistentvolumeclaims", Need: "auto-groups", Why: "create --volume-groups=auto: label the members " + volumes.LabelGroupRun + " for their cut, then remove the label"},

	{Verb: "list", Resource: "pods", Need: "hooks", Why: "create: find the pods that mount the volumes"},
	{Verb: "create", Resource: "pods", Subresource: "exec", Need: "hooks", Why: "create: pre/post hooks"},

	{Verb: "list", Group: snapGroup, Resource: "volumesnapshots", Cluster: true, Need: "prune", Why: "prune: find the VolumeSnapshots a backup kept"},
	{Verb: "get", Group: snapGroup, Resource: "volumesnapshots", Need: "prune", Why: "prune: remove the VolumeSnapshots a backup kept"},
	{Verb: "delete", Group: snapGroup, Resource: "volumesnapshots", Need: "prune", Why: "prune: remove the VolumeSnapshots a backup kept"},
	{Verb: "patch", Group: snapGroup, Resource: "volumesnapshotcontents", Cluster: true, Need: "prune", Why: "prune: delete the storage snapshot with its VolumeSnapshot"},

	{Verb: "create", Resource: "namespaces", Cluster: true, Need: "restore", Optional: "restore into namespaces that do not exist", Why: "restore: namespaces that do not exist"},
	{Verb: "create", Resource: "persistentvolumeclaims", Need: "restore", Why: "restore: PVCs"},
	{Verb: "create", Resource: "configmaps", Need: "restore", Why: "restore: objects of the backup"},
	{Verb: "create", Resource: "secrets", Need: "restore", Why: "restore: objects of the backup"},
	{Verb: "create", Resource: "services", Need: "restore", Why: "restore: objects of the backup"},
	{Verb: "create", Group: "apps", Resource: "deployments", Need: "restore", Why: "restore: objects of the backup"},
	{Verb: "create", Group: "apps", Resource: "statefulsets", Need: "restore", Why: "restore: objects of the backup"},
}

// RightsFor are the rights of the needs ("resources", "volumes", ... or "create"), each once:
// cluster-scoped ones (a ClusterRole) and namespaced ones (a Role per namespace).
func RightsFor(needs []string) (cluster, namespaced []Right) {
	n, _ := needsOf(needs, volumes.ModeSnapshotMove, false)
	return splitRights(n, nil, nil)
}

// needsOf are the needs of the commands checked, for volumes of mode: fs and none take no
// snapshots, and auto falls back to fs for a user who may not read what snapshots need (the
// snapshot rights are then optional). The cluster objects the selected ones refer to are optional
// too: create leaves out what it may not read, with a warning.
func needsOf(commands []string, mode volumes.Mode, listNamespaces bool) (needs map[string]bool, optional map[string]string) {
	n, opt := map[string]bool{}, map[string]string{}
	for _, c := range commands {
		switch c {
		case "create":
			n["resources"], n["volumes"], n["hooks"], n["needed-cluster"] = true, true, true, true
			switch mode {
			case volumes.ModeFS, volumes.ModeNone:
			case volumes.ModeAuto, "":
				n["snapshots"], opt["snapshots"] = true, "snapshot-move in --volumes=auto: without them, volumes go through fs"
			default:
				n["snapshots"] = true
			}
			if n["snapshots"] {
				n["groups"], opt["groups"] = true, groupsOptional
				n["auto-groups"], opt["auto-groups"] = true, "--volume-groups=auto"
			}
			n["namespaces"] = n["namespaces"] || listNamespaces
		case "restore":
			n["volumes"], n["restore"] = true, true
		default:
			n[c] = true // a need named directly (the preflight passes its plan's needs)
		}
	}
	if n["needed-cluster"] {
		opt["needed-cluster"] = "the cluster objects the selected ones refer to (--include-cluster-resources=auto): without them they are left out with a warning"
	}
	return n, opt
}

// groupsOptional is what the rights of volume groups are for: a claim labelled for a group whose
// VolumeGroupSnapshot cannot be created fails its backup.
const groupsOptional = "volume groups (claims labelled " + volumes.LabelVolumeGroup + " or --volume-groups=auto, on a cluster that serves VolumeGroupSnapshots): without them their backups fail"

func checkRights(ctx context.Context, d *Deps, cfg *Config) []Result {
	needs, optional := needsOf(cfg.Commands, cfg.Mode, cfg.AllNamespaces || cfg.ListNamespaces)
	if (needs["groups"] || needs["auto-groups"]) && !groupsServed(d) {
		// No group is cut on this cluster: asking for their rights would only make noise.
		delete(needs, "groups")
		delete(needs, "auto-groups")
	}
	cluster, namespaced := splitRights(needs, optional, cfg.Resources)
	who := caller(ctx, d)
	scopes := cfg.Namespaces
	if cfg.AllNamespaces {
		scopes = []string{""} // every namespace at once: a ClusterRole
	}
	j := judge{ask: selfAsk(d), who: who, fix: callerFix, grant: true}
	out := j.rights(ctx, "rights (cluster)", "", cluster)
	if len(scopes) > maxRightsNamespaces {
		// A request per right and namespace: a selection of hundreds of namespaces would take
		// minutes at the client's rate limit. Namespaces usually share their RoleBindings.
		out = append(out, warn("rights", fmt.Sprintf("checked in the first %d of %d namespaces", maxRightsNamespaces, len(scopes)), "check the others with doctor --include-namespaces"))
		scopes = scopes[:maxRightsNamespaces]
	}
	return append(out, forEach(scopes, 4, func(ns string) []Result {
		name := "rights in " + ns
		if ns == "" {
			name = "rights in all namespaces"
		}
		return j.rights(ctx, name, ns, namespaced)
	})...)
}

// splitRights picks the rights of needs, each once, cluster-scoped and namespaced; those of a need
// in optional are marked with what they are only for. resources, when not nil, are the only
// resource types whose list right the "resources" need asks for.
func splitRights(needs map[string]bool, optional map[string]string, resources []string) (cluster, namespaced []Right) {
	listed := map[string]bool{}
	for _, r := range resources {
		listed[r] = true
	}
	seen := map[string]bool{}
	for _, r := range Rights {
		if o := optional[r.Need]; o != "" && r.Optional == "" {
			r.Optional = o
		}
		key := fmt.Sprintf("%s %v", r, r.Cluster)
		switch {
		case !needs[r.Need] || seen[key]:
			continue
		case r.Need == "resources" && !r.Cluster && resources != nil && !listed[r.groupResource()]:
			// Not in the backup's plan: a user who backs up ConfigMaps alone needs no right on Secrets.
			continue
		case r.Cluster:
			cluster = append(cluster, r)
		default:
			namespaced = append(namespaced, r)
		}
		seen[key] = true
	}
	return cluster, namespaced
}

// groupsServed says whether the cluster may serve VolumeGroupSnapshots (v1 or v1beta2): when
// discovery fails it is assumed to, and the group rights are asked for (optional anyway).
func groupsServed(d *Deps) bool {
	if d.Discovery == nil {
		return true
	}
	v, err := volumes.GroupSnapshotVersion(d.Discovery)
	return err != nil || v != ""
}

// caller names who the checks run as ("" when the cluster does not say).
func caller(ctx context.Context, d *Deps) string {
	r, err := d.Kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r.Status.UserInfo.Username == "" {
		return ""
	}
	return r.Status.UserInfo.Username
}

// asker asks the API server whether a subject may make a call.
type asker func(ctx context.Context, ra *authzv1.ResourceAttributes) (bool, error)

// selfAsk asks for the caller (SelfSubjectAccessReview: anyone may ask it).
func selfAsk(d *Deps) asker {
	return func(ctx context.Context, ra *authzv1.ResourceAttributes) (bool, error) {
		res, err := d.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: ra}}, metav1.CreateOptions{})
		return err == nil && res.Status.Allowed, err
	}
}

// judge asks for every right of a list and turns the answers into a result.
type judge struct {
	ask asker
	who string // the subject, for the report ("" unknown)
	// fix says what to do about missing rights in ns ("" cluster-wide).
	fix func(ns string) string
	// grant: the result carries the Role (or ClusterRole) and binding that grant the missing
	// rights to who, ready for kubectl apply.
	grant bool
}

func callerFix(ns string) string {
	where, kind := "in namespace "+ns, "the Role and RoleBinding below"
	if ns == "" {
		where, kind = "cluster-wide", "the ClusterRole and ClusterRoleBinding below"
	}
	return fmt.Sprintf("grant these rights %s (%s), or run as a user who has them", where, kind)
}

// rights asks, one review per right, 8 at a time, whether the subject has them in ns.
func (j judge) rights(ctx context.Context, check, ns string, rights []Right) []Result {
	if len(rights) == 0 {
		return nil
	}
	type answer struct {
		r       Right
		allowed bool
		err     error
	}
	answers := make([]answer, len(rights))
	forEach(indexes(len(rights)), 8, func(i int) []Result {
		r := rights[i]
		ra := &authzv1.ResourceAttributes{Verb: r.Verb, Group: r.Group, Resource: r.Resource, Subresource: r.Subresource}
		if !r.Cluster {
			ra.Namespace = ns
		}
		allowed, err := j.ask(ctx, ra)
		answers[i] = answer{r: r, err: err, allowed: allowed}
		return nil
	})
	var missing, optional []Right
	var unknown []string
	for _, a := range answers {
		switch {
		case a.err != nil:
			unknown = append(unknown, fmt.Sprintf("%s (%v)", a.r, a.err))
		case !a.allowed && a.r.Optional != "":
			optional = append(optional, a.r)
		case !a.allowed:
			missing = append(missing, a.r)
		}
	}
	as := ""
	if j.who != "" {
		as = " as " + j.who
	}
	switch {
	case len(missing) > 0:
		r := fail(check, fmt.Sprintf("missing%s: %s", as, describeRights(append(missing, optional...))), j.fix(ns))
		if j.grant {
			r.Grant = grant(append(missing, optional...), ns, j.who)
		}
		return []Result{r}
	case len(optional) > 0:
		r := warn(check, fmt.Sprintf("missing%s, needed only for %s: %s", as, optional[0].Optional, describeRights(optional)), "to use it, "+j.fix(ns))
		if j.grant {
			r.Grant = grant(optional, ns, j.who)
		}
		return []Result{r}
	case len(unknown) > 0:
		return []Result{warn(check, "could not ask: "+strings.Join(unknown, "; "), "")}
	}
	return []Result{ok(check, progress.Plural(len(rights), "right", "rights")+" checked"+as)}
}

func describeRights(rs []Right) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s (%s)", r, r.Why)
	}
	return strings.Join(parts, "; ")
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
