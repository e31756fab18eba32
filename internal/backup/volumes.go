package backup

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// VolumeEngine backs up PVC data (internal/volumes through the CLI): Plan decides without
// creating anything, Backup moves the data. Each returns one record per claim.
type VolumeEngine interface {
	Plan(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error)
	Backup(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error)
}

// planVolumes decides, on a dry run, how each selected claim's data would be backed up.
func (b *run) planVolumes(ctx context.Context) error {
	if b.d.Volumes == nil || len(b.claims) == 0 {
		return nil
	}
	vols, err := b.d.Volumes.Plan(ctx, b.claims)
	if err != nil {
		return err
	}
	b.addVolumes(vols)
	return nil
}

// backupVolumes hands the selected claims to the volume engine, once the archive is written.
func (b *run) backupVolumes(ctx context.Context) error {
	if b.d.Volumes == nil || len(b.claims) == 0 {
		return nil
	}
	vols, err := b.d.Volumes.Backup(ctx, b.claims)
	b.addVolumes(vols)
	return err
}

// addVolumes records the volume outcomes; a failed volume is an error of the backup.
func (b *run) addVolumes(vols []catalog.Volume) {
	b.m.Volumes = append(b.m.Volumes, vols...)
	for _, v := range vols {
		where := v.Namespace + "/" + v.PVC
		if v.Status == catalog.VolumeFailed {
			b.m.Errors = append(b.m.Errors, fmt.Sprintf("volume %s (%s): %s", where, v.Mode, v.Error))
			b.log.Add(catalog.LogEntry{Level: "error", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: v.Error})
		} else {
			b.log.Add(catalog.LogEntry{Level: "info", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC,
				Message: fmt.Sprintf("volume %s: %s (%s)", v.Status, v.Mode, v.Reason)})
		}
		for _, d := range v.MoverDebug {
			b.log.Add(catalog.LogEntry{Level: "debug", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: "mover storage call " + d})
		}
		for _, h := range v.Hooks {
			b.log.Add(catalog.LogEntry{Level: "info", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: h})
		}
		for _, w := range v.Warnings {
			b.warn(catalog.Warning{Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: "volume " + where + ": " + w})
		}
	}
}
