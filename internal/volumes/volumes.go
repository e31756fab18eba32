// Package volumes moves PersistentVolume data between a cluster and the Kopia repositories of a
// backup location, with nothing installed in the cluster: per volume it creates VolumeSnapshots,
// temporary PVCs, a temporary Secret and a mover Job, follows them with watches and events, and
// deletes all of it again. It decides the mode of each volume (auto, snapshot-move, fs, snapshot,
// none) and says why.
package volumes

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Mode is how a volume's data is backed up.
type Mode string

// Modes (--volumes and the pvbackup.io/volume-mode annotation).
const (
	ModeAuto         Mode = "auto"
	ModeSnapshotMove Mode = "snapshot-move"
	ModeFS           Mode = "fs"
	ModeSnapshot     Mode = "snapshot"
	ModeNone         Mode = "none"
)

// ParseMode checks a --volumes or annotation value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeSnapshotMove, ModeFS, ModeSnapshot, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("volume mode %q: use auto, snapshot-move, fs, snapshot or none", s)
}

// Labels and annotations.
const (
	AnnotationMode = "pvbackup.io/volume-mode"
	// AnnotationCompression on a PVC overrides create --compression for its volume.
	AnnotationCompression = "pvbackup.io/compression"
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	ManagedBy             = "kubectl-pvbackup"
	LabelBackup           = "pvbackup.io/backup"
	LabelOperation        = "pvbackup.io/operation" // backup or restore
	LabelKept             = "pvbackup.io/kept"      // "true" on VolumeSnapshots of snapshot mode: not temporary
	LabelSourcePVC        = "pvbackup.io/pvc"
	LabelClassPlain       = "pvbackup.io/snapshot-class"
	LabelClassVelero      = "velero.io/csi-volumesnapshot-class"
	// AnnotationDefaultClass marks a driver's default VolumeSnapshotClass.
	AnnotationDefaultClass = "snapshot.storage.kubernetes.io/is-default-class"
)

// Selector returns the label selector of the temporary objects of a backup ("" = of every backup).
func Selector(backup string) string {
	s := LabelManagedBy + "=" + ManagedBy
	if backup != "" {
		s += "," + LabelBackup + "=" + backup
	}
	return s
}

// MoverConfig is how mover Jobs are made.
type MoverConfig struct {
	Image      string
	PullPolicy corev1.PullPolicy
	// Location is the backup location URL as pods reach it.
	Location string
	// RepoPassword returns the Kopia password of a source namespace's repository (derived by
	// internal/keyring on the user's machine). A mover's Secret gets its namespace's only: never
	// the user's password, the location key or the archive key.
	RepoPassword func(namespace string) (string, error)
	// Env is the storage credentials passed to the mover through the temporary Secret.
	Env map[string]string
	// Files are credential files (GOOGLE_APPLICATION_CREDENTIALS) put into the Secret: env name → content.
	Files map[string][]byte
	// Secret, when set, is a Secret of the user's in each namespace that holds the storage
	// credentials; the temporary Secret then holds the repository password alone.
	Secret         string
	ServiceAccount string
	// Identity (--mover-credentials=identity): the movers use their pod's cloud identity; their
	// Secret holds no credential, their pods carry the Azure Workload Identity label, and Settings
	// (non-secret store settings such as the region or the Azure account name) are plain env.
	Identity bool
	Settings map[string]string
	// PullSecret, when set, is copied into each mover's namespace and named in its pod's
	// imagePullSecrets (see PullSecretRef for the default without it).
	PullSecret *PullSecretRef
	RunAsUser  *int64
	FSGroup    *int64
	// Privileged runs the mover as root with CHOWN, DAC_OVERRIDE, FOWNER (Pod Security "baseline"):
	// reads every file whatever its owner and restores owners.
	Privileged bool
	// UploadLimit and DownloadLimit bound each mover's bandwidth (mover.Invocation).
	UploadLimit, DownloadLimit string
	Requests                   corev1.ResourceList
	Limits                     corev1.ResourceList
	BackoffLimit               int32
	ActiveDeadline             time.Duration
	TTL                        time.Duration
	// StorageClassMapping maps the StorageClass of a snapshot's source to the one temporary PVCs
	// get (snapshot-move), and old to new classes on restore.
	StorageClassMapping map[string]string
	// Debug makes movers report their storage calls with HTTP timings (--mover-debug).
	Debug bool
	// ReadOnlyRepository makes restore movers open the repository read-only: it is another
	// tool's (Velero's), and nothing may be written to its bucket.
	ReadOnlyRepository bool
}

// DefaultMoverUID is the image's user (nonroot).
const DefaultMoverUID = 65532

// Defaults fills what is unset.
func (c *MoverConfig) Defaults() {
	if c.PullPolicy == "" {
		c.PullPolicy = corev1.PullIfNotPresent
	}
	if c.Requests == nil {
		c.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	}
	if c.Limits == nil {
		c.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
	}
	if c.ActiveDeadline == 0 {
		c.ActiveDeadline = 6 * time.Hour
	}
	if c.TTL == 0 {
		c.TTL = time.Hour
	}
}
