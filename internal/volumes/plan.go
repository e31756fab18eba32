package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// Plan decides the mode of every claim without creating anything.
func Plan(ctx context.Context, d Deps, cfg Config, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	cfg.defaults()
	facts, err := ReadFacts(ctx, d.Discovery, d.Snap, func(ctx context.Context, n string) (*corev1.PersistentVolume, error) {
		return d.Kube.CoreV1().PersistentVolumes().Get(ctx, n, metav1.GetOptions{})
	}, claims)
	if err != nil {
		return nil, err
	}
	if err := ValidateClassFlag(cfg.SnapshotClasses, facts); err != nil {
		return nil, err
	}
	out := make([]catalog.Volume, 0, len(claims))
	for _, c := range claims {
		v := catalog.Volume{Namespace: c.Namespace, PVC: c.Name}
		if c.Spec.StorageClassName != nil {
			v.StorageClass = *c.Spec.StorageClassName
		}
		if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
			v.Size = q.String()
		} else if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			v.Size = q.String()
		}
		for _, m := range c.Spec.AccessModes {
			v.AccessModes = append(v.AccessModes, string(m))
		}
		if isBlock(c) {
			v.VolumeMode = catalog.VolumeModeBlock
		}
		dec, err := DecideRequest(Request{Mode: cfg.Mode, Policies: cfg.Policies, SnapshotMoveData: cfg.SnapshotMoveData}, cfg.SnapshotClasses, c, facts)
		v.Mode, v.Reason, v.Driver, v.SnapshotClass, v.Warnings = string(dec.Mode), dec.Reason, dec.Driver, dec.SnapshotClass, dec.Warnings
		if err == nil && (dec.Mode == ModeSnapshotMove || dec.Mode == ModeFS) {
			v.Compression, err = volumeCompression(cfg.Compression, c)
		}
		if err != nil {
			v.Status, v.Error = catalog.VolumeFailed, err.Error()
		} else if dec.Mode == ModeNone {
			v.Status = catalog.VolumeSkipped
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].PVC < out[j].PVC
	})
	if err := planGroupsAhead(ctx, d, cfg, out, claims); err != nil {
		return nil, err
	}
	return out, nil
}

// planGroupsAhead checks the --volume-group-snapshot-class names before anything is created and,
// for --dry-run, says in each grouped volume's reason with which group it would be cut (or, in
// its warnings, why alone).
func planGroupsAhead(ctx context.Context, d Deps, cfg Config, plan []catalog.Volume, claims []*corev1.PersistentVolumeClaim) error {
	if !cfg.DryRun && len(cfg.GroupSnapshotClasses) == 0 {
		return nil
	}
	facts, err := ReadGroupFacts(ctx, d.Discovery, d.Dynamic)
	if err != nil {
		if len(cfg.GroupSnapshotClasses) > 0 {
			return err
		}
		if d.Progress != nil {
			d.Progress.Warn(fmt.Sprintf("group snapshots: %v; the plan does not show volume groups", err))
		}
		return nil
	}
	if err := facts.UseClasses(cfg.GroupSnapshotClasses); err != nil || !cfg.DryRun {
		return err
	}
	byKey := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range claims {
		byKey[c.Namespace+"/"+c.Name] = c
	}
	for _, g := range planGroups(plan, byKey, cfg.groupChoice(), facts) {
		for _, i := range g.Members {
			plan[i].Reason += fmt.Sprintf("; would be cut with volume group %s (%s, VolumeGroupSnapshotClass %s): %s", g.Name(), progress.Plural(len(g.Members), "claim", "claims"), g.Class, g.Why())
		}
	}
	return nil
}

// GroupsToCut says whether a backup of plan (volumes.Plan's) will cut volume groups with
// VolumeGroupSnapshots, and whether one of them is an automatic group (--volume-groups=auto,
// whose members it labels): create's preflight then checks the rights of group snapshots. A
// cluster that serves no group API cuts none; when its VolumeGroupSnapshotClasses cannot be read
// (a right the preflight then names) every driver is taken to have one.
func GroupsToCut(ctx context.Context, d Deps, cfg Config, plan []catalog.Volume, claims []*corev1.PersistentVolumeClaim) (groups, auto bool) {
	v, err := GroupSnapshotVersion(d.Discovery)
	if err != nil || v == "" {
		return false, false // the run cuts every claim alone, with a warning
	}
	facts, err := ReadGroupFacts(ctx, d.Discovery, d.Dynamic)
	if err != nil {
		facts = &GroupFacts{Version: v, Classes: map[string]string{}}
		for _, vol := range plan {
			facts.Classes[vol.Driver] = "(unreadable)"
		}
	}
	if facts.UseClasses(cfg.GroupSnapshotClasses) != nil {
		return false, false // Plan has refused the names already
	}
	byKey := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range claims {
		byKey[c.Namespace+"/"+c.Name] = c
	}
	scratch := make([]catalog.Volume, len(plan)) // planGroups writes reasons and warnings
	for i, vol := range plan {
		vol.Warnings = slices.Clone(vol.Warnings)
		scratch[i] = vol
	}
	for _, g := range planGroups(scratch, byKey, cfg.groupChoice(), facts) {
		groups, auto = true, auto || g.Auto
	}
	return groups, auto
}

// volumeCompression is a volume's compression: its PVC's annotation, else the backup's, else the
// default (recorded by name, so describe says what was used).
func volumeCompression(backup string, pvc *corev1.PersistentVolumeClaim) (string, error) {
	if a, ok := pvc.Annotations[AnnotationCompression]; ok {
		a = strings.TrimSpace(a)
		if err := repo.ValidateCompression(a); err != nil || a == "" {
			if err == nil {
				err = errors.New("empty value")
			}
			return "", fmt.Errorf("PVC %s/%s: annotation %s: %w (fix or remove the annotation)", pvc.Namespace, pvc.Name, AnnotationCompression, err)
		}
		return a, nil
	}
	if backup == "" {
		return repo.DefaultCompression, nil
	}
	return backup, nil
}
