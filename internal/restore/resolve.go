package restore

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// resolveResources discovers what the cluster serves and resolves the resource filters against
// it and what the backup holds: custom resources whose CRD this restore brings back are not
// served yet.
func (r *run) resolveResources(context.Context) error {
	all, warns, err := selection.Discover(r.d.Discovery)
	if err != nil {
		return err
	}
	r.res.Warnings = append(r.res.Warnings, warns...)
	r.served = map[schema.GroupVersionResource]bool{}
	for _, x := range all {
		r.served[x.GVR] = true
		r.own.kinds[x.GVR.GroupVersion().WithKind(x.Kind)] = schemaResource{gvr: x.GVR, namespaced: x.Namespaced}
	}
	universe := append([]selection.Resource{}, all...)
	for _, e := range r.entries {
		if !r.served[e.key.GVR] {
			r.served[e.key.GVR] = false
			kind := e.obj.GetKind()
			universe = append(universe, selection.Resource{GVR: e.key.GVR, Kind: kind, Singular: strings.ToLower(kind), Namespaced: e.key.Namespace != ""})
		}
	}
	chosen, err := r.cfg.Resources.Resolve(universe)
	if err != nil {
		return err
	}
	for _, x := range chosen {
		r.chosen[x.GVR.GroupResource()] = true
	}
	return nil
}
