package velero

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phases of a Velero backup that matter here (Velero's BackupPhase).
const (
	PhaseCompleted       = "Completed"
	PhasePartiallyFailed = "PartiallyFailed"
	PhaseFailed          = "Failed"
)

// sourceClusterAnnotation is where Velero records the backed-up cluster's Kubernetes version.
const sourceClusterAnnotation = "velero.io/source-cluster-k8s-gitversion"

// FormatMajor is the only major version of Velero's backup format this build reads ("1.1.0" since
// Velero 1.4; Velero itself refuses to restore another major version).
const FormatMajor = 1

// Backup is what velero-backup.json says of a backup, in our own words: the fields list, describe
// and restore use, with stable JSON names for -o json.
type Backup struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"veleroNamespace,omitempty"` // where Velero ran
	Labels          map[string]string `json:"labels,omitempty"`
	Phase           string            `json:"phase"`
	FormatVersion   string            `json:"formatVersion"`
	StorageLocation string            `json:"storageLocation,omitempty"`
	// SourceCluster is the Kubernetes version of the cluster backed up (Velero's annotation).
	SourceCluster     string     `json:"sourceClusterVersion,omitempty"`
	Created           *time.Time `json:"created,omitempty"`
	Started           *time.Time `json:"started,omitempty"`
	Completed         *time.Time `json:"completed,omitempty"`
	Expires           *time.Time `json:"expires,omitempty"`
	TTL               string     `json:"ttl,omitempty"`
	Selection         Selection  `json:"selection"`
	ItemsTotal        int        `json:"itemsTotal"`
	ItemsBackedUp     int        `json:"itemsBackedUp"`
	Errors            int        `json:"errors"`
	Warnings          int        `json:"warnings"`
	FailureReason     string     `json:"failureReason,omitempty"`
	ValidationErrors  []string   `json:"validationErrors,omitempty"`
	SnapshotVolumes   *bool      `json:"snapshotVolumes,omitempty"`
	SnapshotMoveData  bool       `json:"snapshotMoveData"`
	DefaultFsBackup   bool       `json:"defaultVolumesToFsBackup"`
	DataMover         string     `json:"dataMover,omitempty"`
	Snapshots         Counts     `json:"volumeSnapshots"`
	CSISnapshots      Counts     `json:"csiVolumeSnapshots"`
	ItemOperations    Counts     `json:"itemOperations"`
	Hooks             Counts     `json:"hooks"`
	ResourcePolicy    string     `json:"resourcePolicy,omitempty"`
	IncludeClusterRes *bool      `json:"includeClusterResources,omitempty"`
}

// Selection is what the backup was asked to take.
type Selection struct {
	IncludedNamespaces []string `json:"includedNamespaces,omitempty"`
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	IncludedResources  []string `json:"includedResources,omitempty"`
	ExcludedResources  []string `json:"excludedResources,omitempty"`
	LabelSelector      string   `json:"labelSelector,omitempty"`
	OrLabelSelectors   []string `json:"orLabelSelectors,omitempty"`
}

// Counts are attempted/completed/failed counters of Velero's status.
type Counts struct {
	Attempted int `json:"attempted"`
	Completed int `json:"completed"`
	Failed    int `json:"failed,omitempty"`
}

// Major returns the major version of the backup's format ("1.1.0" → 1); 1 when the field is
// empty (Velero before 1.4 wrote none: its tarball's metadata/version says "1").
func (b *Backup) Major() (int, error) {
	if b.FormatVersion == "" {
		return 1, nil
	}
	s, _, _ := strings.Cut(b.FormatVersion, ".")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("backup %q: format version %q is not a version: %w", b.Name, b.FormatVersion, ErrUnreadable)
	}
	return n, nil
}

// veleroBackup is the part of Velero's Backup object (velero.io/v1) read here.
type veleroBackup struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		IncludedNamespaces      []string                `json:"includedNamespaces"`
		ExcludedNamespaces      []string                `json:"excludedNamespaces"`
		IncludedResources       []string                `json:"includedResources"`
		ExcludedResources       []string                `json:"excludedResources"`
		LabelSelector           *metav1.LabelSelector   `json:"labelSelector"`
		OrLabelSelectors        []*metav1.LabelSelector `json:"orLabelSelectors"`
		TTL                     metav1.Duration         `json:"ttl"`
		SnapshotVolumes         *bool                   `json:"snapshotVolumes"`
		IncludeClusterResources *bool                   `json:"includeClusterResources"`
		StorageLocation         string                  `json:"storageLocation"`
		DefaultVolumesToFs      *bool                   `json:"defaultVolumesToFsBackup"`
		SnapshotMoveData        *bool                   `json:"snapshotMoveData"`
		DataMover               string                  `json:"datamover"`
		ResourcePolicy          *struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"resourcePolicy"`
	} `json:"spec"`
	Status struct {
		FormatVersion                 string       `json:"formatVersion"`
		Expiration                    *metav1.Time `json:"expiration"`
		Phase                         string       `json:"phase"`
		ValidationErrors              []string     `json:"validationErrors"`
		StartTimestamp                *metav1.Time `json:"startTimestamp"`
		CompletionTimestamp           *metav1.Time `json:"completionTimestamp"`
		VolumeSnapshotsAttempted      int          `json:"volumeSnapshotsAttempted"`
		VolumeSnapshotsCompleted      int          `json:"volumeSnapshotsCompleted"`
		FailureReason                 string       `json:"failureReason"`
		Warnings                      int          `json:"warnings"`
		Errors                        int          `json:"errors"`
		CSIVolumeSnapshotsAttempted   int          `json:"csiVolumeSnapshotsAttempted"`
		CSIVolumeSnapshotsCompleted   int          `json:"csiVolumeSnapshotsCompleted"`
		BackupItemOperationsAttempted int          `json:"backupItemOperationsAttempted"`
		BackupItemOperationsCompleted int          `json:"backupItemOperationsCompleted"`
		BackupItemOperationsFailed    int          `json:"backupItemOperationsFailed"`
		Progress                      *struct {
			TotalItems    int `json:"totalItems"`
			ItemsBackedUp int `json:"itemsBackedUp"`
		} `json:"progress"`
		HookStatus *struct {
			HooksAttempted int `json:"hooksAttempted"`
			HooksFailed    int `json:"hooksFailed"`
		} `json:"hookStatus"`
	} `json:"status"`
}

// ParseBackup reads velero-backup.json of the backup in directory dir.
func ParseBackup(dir string, data []byte) (*Backup, error) {
	var v veleroBackup
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("backups/%s/%s is not a Velero Backup object: %v: %w", dir, MetadataFile, err, ErrUnreadable)
	}
	if v.Kind != "Backup" || !strings.HasPrefix(v.APIVersion, "velero.io/") {
		return nil, fmt.Errorf("backups/%s/%s is a %q of %q, not a velero.io Backup: %w", dir, MetadataFile, v.Kind, v.APIVersion, ErrUnreadable)
	}
	if v.Metadata.Name != dir {
		// Velero names the directory after the backup; another name is a copy or a forgery.
		return nil, fmt.Errorf("backups/%s/%s describes backup %q, not %q: %w", dir, MetadataFile, v.Metadata.Name, dir, ErrUnreadable)
	}
	b := &Backup{
		Name: dir, Namespace: v.Metadata.Namespace, Labels: v.Metadata.Labels,
		Phase: v.Status.Phase, FormatVersion: v.Status.FormatVersion, StorageLocation: v.Spec.StorageLocation,
		Created: timeOf(&v.Metadata.CreationTimestamp), Started: timeOf(v.Status.StartTimestamp),
		Completed: timeOf(v.Status.CompletionTimestamp), Expires: timeOf(v.Status.Expiration),
		Errors: v.Status.Errors, Warnings: v.Status.Warnings, FailureReason: v.Status.FailureReason,
		ValidationErrors: v.Status.ValidationErrors,
		SnapshotMoveData: v.Spec.SnapshotMoveData != nil && *v.Spec.SnapshotMoveData,
		DefaultFsBackup:  v.Spec.DefaultVolumesToFs != nil && *v.Spec.DefaultVolumesToFs,
		DataMover:        v.Spec.DataMover, IncludeClusterRes: v.Spec.IncludeClusterResources,
		SnapshotVolumes: v.Spec.SnapshotVolumes,
		SourceCluster:   v.Metadata.Annotations[sourceClusterAnnotation],
		Snapshots:       Counts{Attempted: v.Status.VolumeSnapshotsAttempted, Completed: v.Status.VolumeSnapshotsCompleted},
		CSISnapshots:    Counts{Attempted: v.Status.CSIVolumeSnapshotsAttempted, Completed: v.Status.CSIVolumeSnapshotsCompleted},
		ItemOperations:  Counts{Attempted: v.Status.BackupItemOperationsAttempted, Completed: v.Status.BackupItemOperationsCompleted, Failed: v.Status.BackupItemOperationsFailed},
		Selection: Selection{
			IncludedNamespaces: v.Spec.IncludedNamespaces, ExcludedNamespaces: v.Spec.ExcludedNamespaces,
			IncludedResources: v.Spec.IncludedResources, ExcludedResources: v.Spec.ExcludedResources,
			LabelSelector: formatSelector(v.Spec.LabelSelector),
		},
	}
	if v.Spec.TTL.Duration > 0 {
		b.TTL = v.Spec.TTL.Duration.String()
	}
	for _, s := range v.Spec.OrLabelSelectors {
		b.Selection.OrLabelSelectors = append(b.Selection.OrLabelSelectors, formatSelector(s))
	}
	if p := v.Status.Progress; p != nil {
		b.ItemsTotal, b.ItemsBackedUp = p.TotalItems, p.ItemsBackedUp
	}
	if h := v.Status.HookStatus; h != nil {
		b.Hooks = Counts{Attempted: h.HooksAttempted, Failed: h.HooksFailed, Completed: h.HooksAttempted - h.HooksFailed}
	}
	if rp := v.Spec.ResourcePolicy; rp != nil {
		b.ResourcePolicy = rp.Kind + "/" + rp.Name
	}
	return b, nil
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func formatSelector(s *metav1.LabelSelector) string {
	if s == nil {
		return ""
	}
	return metav1.FormatLabelSelector(s)
}
