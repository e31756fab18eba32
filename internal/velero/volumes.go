package velero

import (
	"fmt"
	"regexp"
	"sort"
)

// Method is how Velero kept a volume's data.
type Method string

// Methods, in Velero's terms: fs-backup (a PodVolumeBackup, read from the pod's mount by the
// node-agent), data mover (a CSI snapshot whose data a DataUpload moved to the bucket), CSI
// snapshot (left in the storage system) and native snapshot (a cloud provider's, by a plugin).
const (
	MethodFSBackup       Method = "fs-backup"
	MethodDataMover      Method = "data-mover"
	MethodCSISnapshot    Method = "csi-snapshot"
	MethodNativeSnapshot Method = "native-snapshot"
)

// Volume is one volume of a backup: where its data is, and whether kubectl-pvbackup can restore it.
type Volume struct {
	Namespace string `json:"namespace"`           // the claim's (and the repository's) namespace
	PVC       string `json:"pvc,omitempty"`       // the claim; "" when only the pod volume is known
	PV        string `json:"pv,omitempty"`        // the PersistentVolume
	Pod       string `json:"pod,omitempty"`       // fs-backup: the pod read
	PodVolume string `json:"podVolume,omitempty"` // fs-backup: its volume
	Method    Method `json:"method"`
	// Uploader is kopia or restic (fs-backup and data mover).
	Uploader string `json:"uploader,omitempty"`
	// DataMover is "velero" for Velero's own; anything else is a third party's.
	DataMover string `json:"dataMover,omitempty"`
	// SnapshotID is the Kopia snapshot (manifest) ID in Repository.
	SnapshotID string `json:"snapshotID,omitempty"`
	// Repository is the repository's prefix in the location: kopia/<Namespace>/.
	Repository string `json:"repository,omitempty"`
	// SnapshotHandle and Driver name a CSI or native snapshot kept by the storage system.
	SnapshotHandle string `json:"snapshotHandle,omitempty"`
	Driver         string `json:"driver,omitempty"`
	Size           int64  `json:"size,omitempty"`
	Phase          string `json:"phase,omitempty"`
	// NodeOS is the OS of the node that moved the data (data mover, Velero 1.16 and later).
	NodeOS string `json:"nodeOS,omitempty"`
	// Empty: Velero found nothing to upload (its PodVolumeBackup has no snapshot).
	Empty bool `json:"empty,omitempty"`
	// Skipped: Velero left the volume out, for SkippedReason.
	Skipped       bool   `json:"skipped,omitempty"`
	SkippedReason string `json:"skippedReason,omitempty"`
	// Restorable says whether kubectl-pvbackup can restore the data; Reason says why not.
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason,omitempty"`
}

// Key names the volume in messages: ns/pvc, or ns/pod:volume when the claim is not known.
func (v *Volume) Key() string {
	if v.PVC != "" {
		return v.Namespace + "/" + v.PVC
	}
	if v.Pod != "" {
		return v.Namespace + "/" + v.Pod + ":" + v.PodVolume
	}
	return v.PV
}

// Kopia's manifest IDs are hex; Velero records them as it gets them. Bounded, since they come
// from the bucket and go into messages and lookups.
var snapshotIDRE = regexp.MustCompile(`^[0-9a-zA-Z]{1,128}$`)

// judge decides whether the volume can be restored, and says why not.
func (v *Volume) judge() {
	v.Restorable, v.Reason = false, ""
	switch {
	case v.Skipped:
		v.Reason = "Velero did not back it up"
		if v.SkippedReason != "" {
			v.Reason += ": " + v.SkippedReason
		}
	case v.Method == MethodCSISnapshot:
		v.Reason = fmt.Sprintf("a CSI snapshot (handle %q, driver %q): its data stays in the storage system, not in the bucket", v.SnapshotHandle, v.Driver)
	case v.Method == MethodNativeSnapshot:
		v.Reason = fmt.Sprintf("a native snapshot of the cloud provider (%q): its data is not in the bucket", v.SnapshotHandle)
	case v.Uploader == "restic":
		v.Reason = "restic data: kubectl-pvbackup reads Velero's Kopia repositories only (restore it with Velero 1.15 or earlier)"
	case v.Method == MethodDataMover && v.DataMover != "" && v.DataMover != "velero":
		v.Reason = fmt.Sprintf("moved by the third-party data mover %q: only Velero's own data mover's repositories are read", v.DataMover)
	case v.NodeOS == "windows":
		v.Reason = "a Windows volume: kubectl-pvbackup restores Linux volumes only"
	case v.Uploader != "" && v.Uploader != "kopia":
		v.Reason = fmt.Sprintf("uploader %q: kubectl-pvbackup reads Velero's Kopia repositories only", v.Uploader)
	case v.Phase != "" && v.Phase != "Completed":
		v.Reason = fmt.Sprintf("Velero's upload ended %s: no data to restore", v.Phase)
	case !validNamespace(v.Namespace):
		v.Reason = fmt.Sprintf("namespace %q is not a namespace name: no repository to read", v.Namespace)
	case v.Empty:
		v.Restorable = true
		v.Reason = "Velero found the volume empty: restored as an empty volume"
	case v.SnapshotID == "":
		v.Reason = "Velero recorded no Kopia snapshot for it"
	case !snapshotIDRE.MatchString(v.SnapshotID):
		v.Reason = fmt.Sprintf("the recorded snapshot ID %q is not a Kopia snapshot ID", v.SnapshotID)
	default:
		v.Restorable = true
		v.Repository = RepositoryPrefix(v.Namespace)
	}
}

// sortVolumes orders volumes by namespace, claim, pod and pod volume.
func sortVolumes(vs []Volume) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.PVC != b.PVC {
			return a.PVC < b.PVC
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.PodVolume < b.PodVolume
	})
}
