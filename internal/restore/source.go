package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// Source is a backup another tool wrote (Velero's): when Deps.Source is set, the engine reads
// the backup's header, objects and volume records from it instead of Deps.Catalog and
// Config.ArchiveKey. Everything after the reading (selection, sanitising, mappings, modifiers,
// order, the Job and Pod rules, the existing-resource policy, claims filled before workloads)
// is the engine's, whatever the source.
type Source interface {
	// Header is read first: a refusal here changes nothing in the cluster.
	Header(ctx context.Context) (SourceHeader, error)
	// Objects returns every object, read and checked whole, before the engine changes anything.
	Objects(ctx context.Context) ([]SourceObject, error)
	// Prepare is the source's own sanitising of one object, before the engine's: it may change
	// obj, or return why the object is left out ("" to restore it).
	Prepare(gr schema.GroupResource, obj *unstructured.Unstructured) (skip string)
}

// SourceHeader is what the engine needs to know before it reads the objects.
type SourceHeader struct {
	// Namespaces are the source namespaces, which --namespace-mapping must name.
	Namespaces []string
	// Warnings are reported with the result (a PartiallyFailed backup, say).
	Warnings []string
	// Volumes are the backup's records of each claim's data, by source namespace and claim: a
	// volume with Status other than catalog.VolumeCompleted is reported skipped with its Reason.
	Volumes []catalog.Volume
}

// SourceObject is one object of a Source.
type SourceObject struct {
	GVR       schema.GroupVersionResource // the version of the copy read
	Namespace string                      // "" for cluster-scoped objects
	Name      string
	Data      []byte // JSON
}

// readSource reads the header and the objects of d.Source into the engine's entries.
func readSource(ctx context.Context, src Source, backup string) (SourceHeader, []*entry, error) {
	h, err := src.Header(ctx)
	if err != nil {
		return SourceHeader{}, nil, err
	}
	objs, err := src.Objects(ctx)
	if err != nil {
		return SourceHeader{}, nil, err
	}
	out := make([]*entry, 0, len(objs))
	for _, so := range objs {
		k := archive.Key{GVR: so.GVR, Namespace: so.Namespace, Name: so.Name}
		var o unstructured.Unstructured
		if err := json.Unmarshal(so.Data, &o.Object); err != nil {
			return SourceHeader{}, nil, fmt.Errorf("backup %q: %s is not a JSON object: %w", backup, k.Path(), err)
		}
		if _, ok := o.Object["metadata"].(map[string]any); !ok {
			return SourceHeader{}, nil, fmt.Errorf("backup %q: %s has no metadata", backup, k.Path())
		}
		if o.GetName() != so.Name || o.GetNamespace() != so.Namespace {
			return SourceHeader{}, nil, fmt.Errorf("backup %q: %s holds an object named %q in namespace %q: the entry was tampered with", backup, k.Path(), o.GetName(), o.GetNamespace())
		}
		e := &entry{key: k, gr: k.GVR.GroupResource(), obj: &o, oldUID: o.GetUID()}
		e.skip = src.Prepare(e.gr, e.obj)
		out = append(out, e)
	}
	return h, out, nil
}

// checkMapping refuses a --namespace-mapping whose source the backup does not have.
func checkMapping(cfg Config, namespaces []string) error {
	for src := range cfg.NamespaceMapping {
		if !contains(namespaces, src) {
			return fmt.Errorf("--namespace-mapping %s:%s: backup %q has no namespace %q (it has %s)", src, cfg.NamespaceMapping[src], cfg.Backup, src, strings.Join(namespaces, ", "))
		}
	}
	return nil
}
