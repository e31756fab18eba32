package mover

import (
	"context"
	"fmt"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// DeleteSnapshots deletes snapshots of the namespace's repository by ID, for `delete`: their
// data is freed by the repository's next maintenance. A snapshot that is gone already counts
// as deleted. It returns how many were deleted.
func DeleteSnapshots(ctx context.Context, s Settings, ids []string) (int, error) {
	r, closeFn, err := openRepo(ctx, s, false)
	if err != nil {
		return 0, err
	}
	defer closeFn()
	return deleteSnapshots(ctx, r, ids)
}

func deleteSnapshots(ctx context.Context, r *repo.Repository, ids []string) (int, error) {
	n := 0
	err := kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "kubectl-pvbackup delete"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		for _, id := range ids {
			if _, err := snapshot.LoadSnapshot(ctx, w, manifest.ID(id)); err != nil {
				continue // not there (deleted before, or never finished)
			}
			if err := w.DeleteManifest(ctx, manifest.ID(id)); err != nil {
				return fmt.Errorf("delete snapshot %s from %s: %w", id, r.Location(), err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// EnsureRepository opens the namespace's repository, creating it on first use. The plugin calls
// it once per namespace before it starts movers in parallel: two movers creating the same new
// repository at once would race (the loser cannot read the other's format blob).
func EnsureRepository(ctx context.Context, s Settings) error {
	_, closeFn, err := openRepo(ctx, s, true)
	if err != nil {
		return err
	}
	closeFn()
	return nil
}
