package restore

import (
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
)

// Phases of a restore, in order. Each phase's objects exist before the next phase starts.
const (
	PhaseNamespaces = iota
	PhaseCRDs       // waited for until Established, so custom resources can follow
	PhaseCluster    // the other cluster-scoped objects: StorageClasses, ClusterRoles, PVs, ...
	PhaseConfig     // what pods read at start: identities, secrets, config, RBAC, limits, services
	PhaseClaims     // PVCs, filled before anything mounts them
	PhaseWorkloads
	PhaseRest
)

// PhaseNames are the phases as the plan prints them.
var PhaseNames = []string{"namespaces", "custom resource definitions", "cluster resources", "configuration", "volume claims", "workloads", "other resources"}

var configResources = map[schema.GroupResource]bool{
	{Resource: "serviceaccounts"}: true,
	{Resource: "secrets"}:         true,
	{Resource: "configmaps"}:      true,
	{Resource: "limitranges"}:     true,
	{Resource: "resourcequotas"}:  true,
	// Services before pods: a pod gets the environment variables of the Services that exist
	// when it starts.
	{Resource: "services"}:                                         true,
	{Group: "rbac.authorization.k8s.io", Resource: "roles"}:        true,
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}: true,
}

var workloadResources = map[schema.GroupResource]bool{
	{Group: "apps", Resource: "deployments"}:  true,
	{Group: "apps", Resource: "statefulsets"}: true,
	{Group: "apps", Resource: "daemonsets"}:   true,
	{Group: "apps", Resource: "replicasets"}:  true,
	{Resource: "replicationcontrollers"}:      true,
	{Group: "batch", Resource: "cronjobs"}:    true,
	{Group: "batch", Resource: "jobs"}:        true,
	{Resource: "pods"}:                        true,
}

// PhaseOf returns the phase an object of gr (cluster-scoped when namespaced is false) belongs to.
func PhaseOf(gr schema.GroupResource, namespaced bool) int {
	switch {
	case gr == schema.GroupResource{Resource: "namespaces"}:
		return PhaseNamespaces
	case gr == schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}:
		return PhaseCRDs
	case !namespaced:
		return PhaseCluster
	case configResources[gr]:
		return PhaseConfig
	case gr == grPVC:
		return PhaseClaims
	case workloadResources[gr]:
		return PhaseWorkloads
	}
	return PhaseRest
}

// bindings name roles: created after them, since a user without the "bind" verb (a namespace
// admin) may only bind a role that exists and whose rights they hold.
var bindings = map[schema.GroupResource]bool{
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}:        true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}: true,
}

// Sort orders keys for restore: by phase, then group/resource (bindings after the other
// resources of their phase), namespace and name, so that a restore is the same every time.
func Sort(keys []archive.Key) {
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		pa, pb := PhaseOf(a.GVR.GroupResource(), a.Namespace != ""), PhaseOf(b.GVR.GroupResource(), b.Namespace != "")
		if pa != pb {
			return pa < pb
		}
		if ba, bb := bindings[a.GVR.GroupResource()], bindings[b.GVR.GroupResource()]; ba != bb {
			return bb
		}
		if ga, gb := a.GVR.GroupResource().String(), b.GVR.GroupResource().String(); ga != gb {
			return ga < gb
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}
