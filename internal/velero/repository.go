package velero

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// DefaultPassword is the repository password Velero uses when nobody set one: Velero creates its
// Secret velero-repo-credentials with it (pkg/repository/keys/keys.go, encryptionKey, v1.18.3).
const DefaultPassword = "static-passw0rd"

// Where Velero keeps the password it uses (pkg/repository/keys/keys.go).
const (
	PasswordSecret    = "velero-repo-credentials"
	PasswordSecretKey = "repository-password"
)

// Password is a Velero repository password and where it came from, for messages.
type Password struct {
	Value  string
	Source string
}

// SecretReader reads the Secret velero-repo-credentials of Velero's namespace: ok is false when
// the cluster has no such Secret or the user may not read it (the default is then tried).
type SecretReader func(ctx context.Context) (password string, ok bool, err error)

// ResolvePassword picks the repository password: the file when given, else the Secret when
// readSecret finds it, else Velero's built-in default. Velero trims white space around the
// Secret's value; so does this.
func ResolvePassword(ctx context.Context, file string, readSecret SecretReader) (Password, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Password{}, fmt.Errorf("--velero-password-file: %w", err)
		}
		p := strings.TrimSpace(string(b))
		if p == "" {
			return Password{}, fmt.Errorf("--velero-password-file %s is empty", file)
		}
		return Password{Value: p, Source: "--velero-password-file " + file}, nil
	}
	if readSecret != nil {
		p, ok, err := readSecret(ctx)
		if err != nil {
			return Password{}, err
		}
		if p = strings.TrimSpace(p); ok && p != "" {
			return Password{Value: p, Source: "Secret " + PasswordSecret + " (key " + PasswordSecretKey + ")"}, nil
		}
	}
	return Password{Value: DefaultPassword, Source: "Velero's built-in default password"}, nil
}

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
