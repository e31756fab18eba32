// Package removal removes one backup: its kept VolumeSnapshots (cluster), its Kopia snapshots
// (namespace repositories) and its files (catalog). `delete` and `prune` both use it. The data
// the Kopia snapshots referenced is freed later, by repository maintenance.
package removal

import (
	"context"
	"errors"
	"fmt"
	"sort"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Deps are what a removal touches.
type Deps struct {
	Catalog *catalog.Catalog
	// Repos opens the namespace repositories.
	Repos *repo.Service
	// DeleteKeptSnapshots deletes the VolumeSnapshots snapshot mode kept for a backup and
	// returns how many it deleted. nil: no cluster at hand.
	DeleteKeptSnapshots func(ctx context.Context, backup string) (int, error)
}

// Result says what was removed.
type Result struct {
	Name            string         `json:"name"`
	Files           int            `json:"files"`
	KopiaSnapshots  map[string]int `json:"kopiaSnapshots,omitempty"` // per namespace
	VolumeSnapshots int            `json:"volumeSnapshots,omitempty"`
	// Warnings name volume data that was left behind (only when not Strict).
	Warnings []string `json:"warnings,omitempty"`
}

// Namespaces returns the namespaces whose repositories lost snapshots, sorted.
func (r *Result) Namespaces() []string {
	out := make([]string, 0, len(r.KopiaSnapshots))
	for ns, n := range r.KopiaSnapshots {
		if n > 0 {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out
}

// Target is a backup to remove: its manifest is nil for an incomplete backup (files only).
type Target struct {
	Name     string
	Manifest *catalog.Manifest
}

// Remove removes one backup; see RemoveAll.
func Remove(ctx context.Context, d Deps, name string, m *catalog.Manifest, strict bool) (*Result, error) {
	res := RemoveAll(ctx, d, []Target{{Name: name, Manifest: m}}, strict)
	return &res[0].Result, res[0].Err
}

// Outcome is one target's removal.
type Outcome struct {
	Result
	Err error
}

// RemoveAll removes the targets: kept VolumeSnapshots first, then Kopia snapshots (each
// namespace repository is opened once for all targets), then the files. Strict (prune): a target
// whose volume data cannot all be removed keeps its files, so that the next run tries again, and
// gets an error. Not strict (delete): what cannot be removed becomes a warning that says how to
// remove it, and the files go anyway, so a backup can always be deleted.
func RemoveAll(ctx context.Context, d Deps, targets []Target, strict bool) []Outcome {
	out := make([]Outcome, len(targets))
	errs := make([][]error, len(targets))
	for i, t := range targets {
		out[i].Name, out[i].KopiaSnapshots = t.Name, map[string]int{}
		if t.Manifest != nil {
			if err := d.removeKept(ctx, t.Manifest, &out[i].Result); err != nil {
				errs[i] = append(errs[i], err)
			}
		}
	}
	d.removeKopia(ctx, targets, out, errs, strict)
	for i, t := range targets {
		err := errors.Join(errs[i]...)
		if err != nil && strict {
			out[i].Err = fmt.Errorf("remove backup %q: %w (its files were kept; the next run tries again)", t.Name, err)
			continue
		}
		for _, e := range errs[i] {
			out[i].Warnings = append(out[i].Warnings, e.Error())
		}
		out[i].Files, out[i].Err = d.Catalog.Delete(ctx, t.Name)
	}
	return out
}
func (d Deps) removeKept(ctx context.Context, m *catalog.Manifest, res *Result) error {
	kept := false
	for _, v := range m.Volumes {
		kept = kept || v.VolumeSnapshot != ""
	}
	if !kept {
		return nil
	}
	hint := fmt.Sprintf("delete them with kubectl delete volumesnapshots -A -l %s,%s=true", volumes.Selector(m.Name), volumes.LabelKept)
	if d.DeleteKeptSnapshots == nil {
		return fmt.Errorf("the VolumeSnapshots kept by snapshot mode were not deleted: no cluster at hand (%s)", hint)
	}
	n, err := d.DeleteKeptSnapshots(ctx, m.Name)
	res.VolumeSnapshots = n
	if err != nil {
		return fmt.Errorf("the VolumeSnapshots kept by snapshot mode were not deleted (%v): %s", err, hint)
	}
	return nil
}

// owned is a Kopia snapshot a backup's manifest names, and whose it must be: the snapshot's tags
// must name the backup (the directory the manifest was read from) and the volume.
type owned struct {
	id, backup, pvc string
}

// removeKopia deletes the targets' Kopia snapshots, one write session per namespace. Strict:
// targets that already failed keep their snapshots.
func (d Deps) removeKopia(ctx context.Context, targets []Target, out []Outcome, errs [][]error, strict bool) {
	byNS := map[string]map[int][]owned{} // namespace -> target -> its snapshots there
	for i, t := range targets {
		if t.Manifest == nil || (strict && len(errs[i]) > 0) {
			continue
		}
		for _, v := range t.Manifest.Volumes {
			if v.KopiaSnapshot == "" {
				continue
			}
			if byNS[v.Namespace] == nil {
				byNS[v.Namespace] = map[int][]owned{}
			}
			byNS[v.Namespace][i] = append(byNS[v.Namespace][i], owned{id: v.KopiaSnapshot, backup: t.Name, pvc: v.PVC})
		}
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		foreign, err := d.deleteSnapshots(ctx, ns, byNS[ns], out, strict)
		if err != nil {
			for i := range byNS[ns] {
				errs[i] = append(errs[i], fmt.Errorf("the Kopia snapshots of namespace %s were kept: %w", ns, err))
			}
		}
		for i, list := range foreign {
			errs[i] = append(errs[i], list...)
		}
	}
}

// deleteSnapshots deletes snapshots of one namespace's repository by ID. A snapshot that is gone
// already counts as deleted (a run interrupted before the files went). A snapshot whose tags do
// not name the backup and volume that list it is another backup's (a copied backup directory, or
// a backup.json planted by a bucket writer): it is kept, and returned per target as an error;
// strict, the target's own snapshots are then kept too (its backup.json is not to be trusted).
func (d Deps) deleteSnapshots(ctx context.Context, ns string, ids map[int][]owned, out []Outcome, strict bool) (map[int][]error, error) {
	r, closeFn, err := d.Repos.Open(ctx, ns)
	if errors.Is(err, repo.ErrNoRepository) {
		return nil, nil // nothing left to delete
	}
	if err != nil {
		return nil, err
	}
	defer closeFn()
	counts := map[int]int{}
	foreign := map[int][]error{}
	err = kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "kubectl-pvbackup remove"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		for i, list := range ids {
			var mine []string
			for _, o := range list {
				man, err := snapshot.LoadSnapshot(ctx, w, manifest.ID(o.id))
				if errors.Is(err, snapshot.ErrSnapshotNotFound) {
					continue // not there (deleted before, or never finished)
				}
				if err != nil {
					// Not a reason to forget it: backup.json is the only record of its ID.
					return fmt.Errorf("read snapshot %s in %s: %w", o.id, r.Location(), err)
				}
				if err := o.check(ns, man); err != nil {
					foreign[i] = append(foreign[i], fmt.Errorf("the Kopia snapshot %s in %s was kept: %w", o.id, r.Location(), err))
					continue
				}
				mine = append(mine, o.id)
			}
			if strict && len(foreign[i]) > 0 {
				continue
			}
			for _, id := range mine {
				if err := w.DeleteManifest(ctx, manifest.ID(id)); err != nil {
					return fmt.Errorf("delete snapshot %s from %s: %w", id, r.Location(), err)
				}
				counts[i]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, n := range counts {
		out[i].KopiaSnapshots[ns] = n
	}
	return foreign, nil
}

// ErrForeignSnapshot is returned (wrapped) for a Kopia snapshot a backup names but whose tags
// name another backup or volume.
var ErrForeignSnapshot = errors.New("the snapshot is not this backup's")

// check says whether man is the snapshot of o's backup and volume (in namespace ns), as the mover
// tags it.
func (o owned) check(ns string, man *snapshot.Manifest) error {
	tags := man.Tags
	if tags[repo.TagBackup] == o.backup && tags[repo.TagNamespace] == ns && tags[repo.TagPVC] == o.pvc {
		return nil
	}
	owner := "has no backup tag"
	if b, ok := tags[repo.TagBackup]; ok {
		owner = fmt.Sprintf("belongs to backup %q, volume %s/%s", b, tags[repo.TagNamespace], tags[repo.TagPVC])
	}
	return fmt.Errorf("backup %q lists it for volume %s/%s, but it %s: %w (backup %q's backup.json was copied from another backup or written by hand; check it before deleting anything)",
		o.backup, ns, o.pvc, owner, ErrForeignSnapshot, o.backup)
}
