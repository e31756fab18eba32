package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kopia/kopia/repo"
	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/format"
	"gocloud.dev/blob"
)

// ReadOnlyStorageType is the Kopia storage type of a read-only open (OpenReadOnly).
const ReadOnlyStorageType = "pvbackup-gocloud-readonly"

// ErrReadOnly is returned (wrapped) by every write or delete of a read-only storage.
var ErrReadOnly = errors.New("read-only: this repository belongs to another tool and is never written")

// ReadOnlyStorage is a Kopia storage that reads through Storage and refuses every write, delete
// or retention change. Every method is spelt out rather than inherited, so a write method that a
// newer Kopia adds to blob.Storage fails to compile here instead of reaching the bucket.
type ReadOnlyStorage struct {
	st *Storage
}

var _ kblob.Storage = (*ReadOnlyStorage)(nil)

func init() {
	kblob.AddSupportedStorage(ReadOnlyStorageType, StorageOptions{}, func(ctx context.Context, o *StorageOptions, isCreate bool) (kblob.Storage, error) {
		if isCreate {
			return nil, fmt.Errorf("kopia storage %s: %w", o.Display, ErrReadOnly)
		}
		inner, err := kblob.NewStorage(ctx, kblob.ConnectionInfo{Type: StorageType, Config: o}, false)
		if err != nil {
			return nil, err
		}
		return &ReadOnlyStorage{st: inner.(*Storage)}, nil
	})
}

// GetCapacity is not known for a bucket.
func (r *ReadOnlyStorage) GetCapacity(ctx context.Context) (kblob.Capacity, error) {
	return r.st.GetCapacity(ctx)
}

// IsReadOnly is true.
func (r *ReadOnlyStorage) IsReadOnly() bool { return true }

// GetBlob reads a blob.
func (r *ReadOnlyStorage) GetBlob(ctx context.Context, id kblob.ID, offset, length int64, output kblob.OutputBuffer) error {
	return r.st.GetBlob(ctx, id, offset, length, output)
}

// GetMetadata stats a blob.
func (r *ReadOnlyStorage) GetMetadata(ctx context.Context, id kblob.ID) (kblob.Metadata, error) {
	return r.st.GetMetadata(ctx, id)
}

// ListBlobs lists blobs.
func (r *ReadOnlyStorage) ListBlobs(ctx context.Context, prefix kblob.ID, cb func(kblob.Metadata) error) error {
	return r.st.ListBlobs(ctx, prefix, cb)
}

// PutBlob refuses.
func (r *ReadOnlyStorage) PutBlob(_ context.Context, id kblob.ID, _ kblob.Bytes, _ kblob.PutOptions) error {
	return fmt.Errorf("put %s in %s: %w", id, r.st.DisplayName(), ErrReadOnly)
}

// DeleteBlob refuses.
func (r *ReadOnlyStorage) DeleteBlob(_ context.Context, id kblob.ID) error {
	return fmt.Errorf("delete %s in %s: %w", id, r.st.DisplayName(), ErrReadOnly)
}

// ExtendBlobRetention refuses: it changes the object's lock in the bucket.
func (r *ReadOnlyStorage) ExtendBlobRetention(_ context.Context, id kblob.ID, _ kblob.ExtendOptions) error {
	return fmt.Errorf("extend retention of %s in %s: %w", id, r.st.DisplayName(), ErrReadOnly)
}

// ConnectionInfo names the read-only storage type, so a storage Kopia rebuilds is read-only too.
func (r *ReadOnlyStorage) ConnectionInfo() kblob.ConnectionInfo {
	o := r.st.opts
	return kblob.ConnectionInfo{Type: ReadOnlyStorageType, Config: &o}
}

// DisplayName names the location.
func (r *ReadOnlyStorage) DisplayName() string { return r.st.DisplayName() }

// Close leaves the bucket to its owner.
func (r *ReadOnlyStorage) Close(ctx context.Context) error { return r.st.Close(ctx) }

// FlushCaches has nothing to flush.
func (r *ReadOnlyStorage) FlushCaches(ctx context.Context) error { return r.st.FlushCaches(ctx) }

// OpenReadOnly opens the Kopia repository in bucket (narrowed to the repository's prefix) for
// reading only, as a repository another tool owns (Velero's): through ReadOnlyStorage, with
// Kopia's own read-only mode on, no local cache, no repository log, no maintenance, and no
// waiting on an upgrade lock. Nothing is written to the bucket; the temporary directory that
// holds Kopia's connection config is removed by Close. A wrong password is ErrWrongPassword.
func OpenReadOnly(ctx context.Context, bucket *blob.Bucket, display, password, cacheDir string) (_ *Repository, err error) {
	if password == "" {
		return nil, fmt.Errorf("open repository %s: no password given", display)
	}
	st, release := NewStorage(bucket, display)
	ro := &ReadOnlyStorage{st: st}
	dir, err := os.MkdirTemp(cacheDir, "pvbackup-kopia-ro-")
	if err != nil {
		release()
		return nil, fmt.Errorf("open repository %s: create config directory: %w", display, err)
	}
	defer func() {
		if err != nil {
			release()
			_ = os.RemoveAll(dir)
		}
	}()
	if _, err = ro.GetMetadata(ctx, format.KopiaRepositoryBlobID); errors.Is(err, kblob.ErrBlobNotFound) {
		return nil, fmt.Errorf("%w at %s", ErrNoRepository, display)
	} else if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", display, err)
	}
	configFile := filepath.Join(dir, "repository.config")
	if err = writeReadOnlyConfig(configFile, ro, display); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", display, err)
	}
	r, err := repo.Open(ctx, configFile, password, &repo.Options{
		OnFatalError:         func(error) {},
		DisableRepositoryLog: true, // no _log blobs
		DoNotWaitForUpgrade:  true, // an upgrade in progress is an error, not a wait
	})
	if err != nil {
		return nil, classify(err, display)
	}
	return &Repository{Repository: r, display: display, dir: dir, release: release, st: st}, nil
}

// writeReadOnlyConfig writes Kopia's connection config: the read-only storage, no cache at all,
// and Kopia's read-only client mode.
func writeReadOnlyConfig(path string, ro *ReadOnlyStorage, display string) error {
	ci := ro.ConnectionInfo()
	b, err := json.MarshalIndent(&repo.LocalConfig{
		Storage: &ci,
		ClientOptions: repo.ClientOptions{
			Username: ClientUser, Hostname: ClientHost, ReadOnly: true,
			Description: "kubectl-pvbackup (read-only) " + display,
		},
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
