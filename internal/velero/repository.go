package velero

import (
	"context"
	"errors"
	"fmt"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// Repository is one of Velero's Kopia repositories, opened read-only.
type Repository struct {
	*repo.Repository
	bucket *blob.Bucket
}

// Close closes the repository and its bucket handle.
func (r *Repository) Close(ctx context.Context) error {
	err := r.Repository.Close(ctx)
	if cerr := r.bucket.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenRepository opens the Kopia repository Velero keeps for namespace, read-only: nothing is
// written to the bucket, not even Kopia's logs or caches (repo.OpenReadOnly). cacheDir holds the
// temporary connection config ("" = the system's).
func (l *Location) OpenRepository(ctx context.Context, namespace string, pw Password, cacheDir string) (*Repository, error) {
	if !validNamespace(namespace) {
		return nil, fmt.Errorf("namespace %q is not a namespace name: no Velero repository to open", namespace)
	}
	b, err := l.sub(ctx, RepositoryPrefix(namespace))
	if err != nil {
		return nil, err
	}
	display := l.RepositoryDisplay(namespace)
	r, err := repo.OpenReadOnly(ctx, b, display, pw.Value, cacheDir)
	if err != nil {
		_ = b.Close()
		if errors.Is(err, repo.ErrWrongPassword) {
			return nil, fmt.Errorf("wrong password for Velero's repository %s (tried %s): pass the password Velero used with --velero-password-file: %w", display, pw.Source, repo.ErrWrongPassword)
		}
		return nil, err
	}
	return &Repository{Repository: r, bucket: b}, nil
}

// Snapshot loads the Kopia snapshot id (a Volume's SnapshotID) and its root directory.
func (r *Repository) Snapshot(ctx context.Context, id string) (*snapshot.Manifest, fs.Directory, error) {
	if !snapshotIDRE.MatchString(id) {
		return nil, nil, fmt.Errorf("%q is not a Kopia snapshot ID", id)
	}
	m, err := snapshot.LoadSnapshot(ctx, r.Repository, manifest.ID(id))
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s in %s: %w", id, r.Location(), err)
	}
	root, err := snapshotfs.SnapshotRoot(r.Repository, m)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s in %s: %w", id, r.Location(), err)
	}
	dir, ok := root.(fs.Directory)
	if !ok {
		return nil, nil, fmt.Errorf("snapshot %s in %s is of a single file, not a volume's directory", id, r.Location())
	}
	return m, dir, nil
}
