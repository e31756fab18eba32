package velero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// ErrNoTarball refuses a backup without its resources tarball: there is nothing to restore.
var ErrNoTarball = errors.New("no resources tarball")

// Source is a Velero backup as our restore engine reads it (restore.Source): its objects come
// from the resources tarball, its volumes from Details.Volumes.
type Source struct {
	d            *Details
	allowPartial bool
}

var _ restore.Source = (*Source)(nil)

// NewSource makes a restore source of d (from Location.Describe). allowPartial lets a
// PartiallyFailed backup be restored (--allow-partially-failed).
func NewSource(d *Details, allowPartial bool) *Source {
	return &Source{d: d, allowPartial: allowPartial}
}

// Header refuses what cannot be restored at all, and says what the engine needs first.
func (s *Source) Header(context.Context) (restore.SourceHeader, error) {
	b := s.d.Backup
	if err := b.CheckRestorable(s.allowPartial); err != nil {
		return restore.SourceHeader{}, err
	}
	if s.d.resources == nil {
		return restore.SourceHeader{}, fmt.Errorf("backup %q of Velero has no resources tarball (%s): nothing to restore: %w", b.Name, b.Name+suffixTarball, ErrNoTarball)
	}
	h := restore.SourceHeader{Namespaces: s.namespaces()}
	if b.Phase == PhasePartiallyFailed {
		h.Warnings = append(h.Warnings, fmt.Sprintf("Velero backup %q is PartiallyFailed (%s; see `kubectl pvbackup velero describe %s`): what it holds is restored", b.Name, countOf(b.Errors, "error"), b.Name))
	}
	vols, warns := ClaimVolumes(s.d.Volumes)
	classes := s.claimClasses()
	for i := range vols {
		vols[i].StorageClass = classes[vols[i].Namespace+"/"+vols[i].PVC]
	}
	h.Volumes, h.Warnings = vols, append(h.Warnings, warns...)
	return h, nil
}

// claimClasses are the StorageClasses of the tarball's claims, by namespace/name (what the
// restore preflight checks): spec.storageClassName, else the beta annotation; none for a claim
// that names neither (the target's default class provisions it).
func (s *Source) claimClasses() map[string]string {
	out := map[string]string{}
	for _, o := range s.d.resources.Objects {
		if o.GroupResource != grClaims {
			continue
		}
		var c struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				StorageClassName *string `json:"storageClassName"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.Data, &c) != nil {
			continue // Objects reports it
		}
		class := c.Metadata.Annotations["volume.beta.kubernetes.io/storage-class"]
		if c.Spec.StorageClassName != nil {
			class = *c.Spec.StorageClassName
		}
		out[o.Namespace+"/"+o.Name] = class
	}
	return out
}

var grClaims = schema.GroupResource{Resource: "persistentvolumeclaims"}

// namespaces are the namespaces of the tarball's objects that can be restored.
func (s *Source) namespaces() []string {
	seen := map[string]bool{}
	for _, o := range s.d.resources.Objects {
		ns := o.Namespace
		if o.GroupResource == (schema.GroupResource{Resource: "namespaces"}) {
			ns = o.Name
		}
		if ns != "" && notRestored(o.GroupResource) == "" {
			seen[ns] = true
		}
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// Objects are the tarball's objects, one copy each (Location.ReadResources chose it).
func (s *Source) Objects(context.Context) ([]restore.SourceObject, error) {
	out := make([]restore.SourceObject, 0, len(s.d.resources.Objects))
	for _, o := range s.d.resources.Objects {
		gvr := o.GroupResource.WithVersion(o.Version)
		out = append(out, restore.SourceObject{GVR: gvr, Namespace: o.Namespace, Name: o.Name, Data: o.Data})
	}
	return out, nil
}

// ClaimVolumes turns Velero's volumes into the engine's records, by claim: a volume that cannot be
// restored is recorded Skipped with the reason. Pod volumes that are no claim's (an emptyDir
// read by fs-backup) come back as warnings: there is no claim to fill.
func ClaimVolumes(vols []Volume) ([]catalog.Volume, []string) {
	var out []catalog.Volume
	var warns []string
	seen := map[string]int{}
	for _, v := range vols {
		if v.PVC == "" {
			if v.Pod != "" {
				warns = append(warns, fmt.Sprintf("volume %s (%s) is no claim's (an emptyDir or the like): its data is not restored", v.Key(), v.Method))
			}
			continue
		}
		cv := catalog.Volume{Namespace: v.Namespace, PVC: v.PVC, Mode: string(v.Method), Reason: v.Reason, Status: "Skipped"}
		if v.Restorable {
			cv.Status, cv.KopiaSnapshot, cv.Bytes = catalog.VolumeCompleted, v.SnapshotID, v.Size
			if v.Empty {
				cv.KopiaSnapshot = ""
			}
		}
		if i, ok := seen[v.Key()]; ok { // a claim read through two pods: the restorable copy wins
			if out[i].Status != catalog.VolumeCompleted && v.Restorable {
				out[i] = cv
			}
			continue
		}
		seen[v.Key()] = len(out)
		out = append(out, cv)
	}
	return out, warns
}

// Velero's own restore never restores these (pkg/restore/restore.go, nonRestorableResources).
var nonRestorable = map[schema.GroupResource]string{
	{Resource: "nodes"}:                                                    "nodes belong to the cluster",
	{Resource: "events"}:                                                   "events are not restored",
	{Group: "events.k8s.io", Resource: "events"}:                           "events are not restored",
	{Group: "storage.k8s.io", Resource: "csinodes"}:                        "CSINodes belong to the cluster",
	{Group: "storage.k8s.io", Resource: "volumeattachments"}:               "VolumeAttachments belong to the cluster",
	{Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotcontents"}: "VolumeSnapshotContents of the source cluster: their snapshots stay in its storage system",
}

// notRestored says why objects of gr are never restored from a Velero backup ("" if they are).
func notRestored(gr schema.GroupResource) string {
	if gr.Group == "velero.io" {
		return "Velero's own bookkeeping (" + gr.String() + ")"
	}
	return nonRestorable[gr]
}

// Velero's marks on objects it backed up or restored.
const (
	labelBackupName  = "velero.io/backup-name"
	labelRestoreName = "velero.io/restore-name"
	restoreWait      = "restore-wait" // Velero's restore helper init container
)

var grVolumeSnapshot = schema.GroupResource{Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots"}

// Prepare removes Velero's leftovers that must not reach a cluster, or says why obj is left out.
func (s *Source) Prepare(gr schema.GroupResource, obj *unstructured.Unstructured) string {
	if why := notRestored(gr); why != "" {
		return why
	}
	if gr == grVolumeSnapshot && obj.GetLabels()[labelBackupName] != "" {
		return "a VolumeSnapshot Velero made: its snapshot stays in the source cluster's storage system"
	}
	if l := obj.GetLabels(); l[labelBackupName] != "" || l[labelRestoreName] != "" {
		delete(l, labelBackupName)
		delete(l, labelRestoreName)
		obj.SetLabels(l)
	}
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		stripRestoreWait(obj)
	case grClaims:
		prepareClaim(obj)
	}
	return ""
}

// stripRestoreWait removes Velero's restore-wait init containers: a pod restored by Velero and
// backed up again carries one, and it waits for ever for a file only Velero's node-agent writes.
func stripRestoreWait(obj *unstructured.Unstructured) {
	inits, ok, _ := unstructured.NestedSlice(obj.Object, "spec", "initContainers")
	if !ok {
		return
	}
	keep := inits[:0]
	for _, c := range inits {
		if m, _ := c.(map[string]any); m != nil && m["name"] == restoreWait {
			continue
		}
		keep = append(keep, c)
	}
	if len(keep) == 0 {
		unstructured.RemoveNestedField(obj.Object, "spec", "initContainers")
		return
	}
	_ = unstructured.SetNestedSlice(obj.Object, keep, "spec", "initContainers")
}

// prepareClaim removes Velero's marks on a claim (the annotations velero.io/data-upload-name,
// velero.io/csi-volumesnapshot-*, backup.velero.io/must-include-additional-items, the label
// velero.io/volume-snapshot-name) and a data source naming a VolumeSnapshot Velero made
// (velero-<claim>-<suffix>).
func prepareClaim(obj *unstructured.Unstructured) {
	if a := obj.GetAnnotations(); len(a) > 0 {
		obj.SetAnnotations(withoutVelero(a))
	}
	if l := obj.GetLabels(); len(l) > 0 {
		obj.SetLabels(withoutVelero(l))
	}
	for _, f := range []string{"dataSource", "dataSourceRef"} {
		kind, _, _ := unstructured.NestedString(obj.Object, "spec", f, "kind")
		name, _, _ := unstructured.NestedString(obj.Object, "spec", f, "name")
		if kind == "VolumeSnapshot" && strings.HasPrefix(name, "velero-") {
			unstructured.RemoveNestedField(obj.Object, "spec", f)
		}
	}
}

// withoutVelero removes the keys of Velero's domains (velero.io/, backup.velero.io/, ...) from m.
func withoutVelero(m map[string]string) map[string]string {
	for k := range m {
		domain, _, ok := strings.Cut(k, "/")
		if ok && (domain == "velero.io" || strings.HasSuffix(domain, ".velero.io")) {
			delete(m, k)
		}
	}
	return m
}
