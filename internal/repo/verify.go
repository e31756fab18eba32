package repo

import (
	"context"
	"fmt"
	"runtime"

	"github.com/kopia/kopia/repo"
	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// Verify checks every snapshot in the repository the way `kopia snapshot verify` does: every
// directory and file object is walked, every backing pack must exist, and filesPercent of the files
// (100 = all) are read back in full, which checks their contents decrypt and hash correctly.
func Verify(ctx context.Context, r *Repository, filesPercent float64) error {
	opts := snapshotfs.VerifierOptions{
		VerifyFilesPercent: filesPercent,
		FileQueueLength:    20000,
		Parallelism:        max(2, runtime.NumCPU()),
		MaxErrors:          10,
	}
	if dr, ok := r.Repository.(repo.DirectRepository); ok {
		bm, err := kblob.ReadBlobMap(ctx, dr.BlobReader())
		if err != nil {
			return fmt.Errorf("verify %s: list packs: %w", r.display, err)
		}
		opts.BlobMap = bm
	}
	manifests, err := snapshot.ListSnapshotManifests(ctx, r, nil, nil)
	if err != nil {
		return fmt.Errorf("verify %s: list snapshots: %w", r.display, err)
	}
	snaps, err := snapshot.LoadSnapshots(ctx, r, manifests)
	if err != nil {
		return fmt.Errorf("verify %s: load snapshots: %w", r.display, err)
	}
	v := snapshotfs.NewVerifier(ctx, r, opts)
	_, err = v.InParallel(ctx, func(tw *snapshotfs.TreeWalker) error {
		for _, man := range snaps {
			if man.RootEntry == nil {
				continue
			}
			root, err := snapshotfs.SnapshotRoot(r, man)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", man.ID, err)
			}
			_ = tw.Process(ctx, root, fmt.Sprintf("%v@%s", man.Source, man.ID)) // errors are collected by the walker
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify %s: %w", r.display, err)
	}
	return nil
}
