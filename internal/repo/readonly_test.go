package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/fs/localfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/upload"
	gblob "gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// bucketState is every object of a bucket with its size and content hash.
func bucketState(t *testing.T, b *gblob.Bucket) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %d %x", obj.Key, obj.Size, sha256.Sum256(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestOpenReadOnly: a repository written by another client opens read-only, its snapshot reads,
// every write is refused, and the bucket is byte for byte what it was.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, bucket, "mem://other", Config{Password: "theirs", CacheDir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	si := snapshot.SourceInfo{Host: "other", UserName: "tool", Path: "/data"}
	var id manifest.ID
	err = repo.WriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w repo.RepositoryWriter) error {
		tree, err := policy.TreeForSource(ctx, w, si)
		if err != nil {
			return err
		}
		entry, err := localfs.NewEntry(src)
		if err != nil {
			return err
		}
		man, err := upload.NewUploader(w).Upload(ctx, entry, tree, si)
		if err != nil {
			return err
		}
		id, err = snapshot.SaveSnapshot(ctx, w, man)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := bucketState(t, bucket)

	start := time.Now()
	if _, err := OpenReadOnly(ctx, bucket, "mem://other", "wrong", t.TempDir()); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a wrong password took %s to fail", d)
	}
	ro, err := OpenReadOnly(ctx, bucket, "mem://other", "theirs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	man, err := snapshot.LoadSnapshot(ctx, ro, id)
	if err != nil || man.Stats.TotalFileCount != 1 {
		t.Fatalf("load snapshot: %v %+v", err, man)
	}
	err = repo.WriteSession(ctx, ro, repo.WriteSessionOptions{Purpose: "must fail"}, func(ctx context.Context, w repo.RepositoryWriter) error {
		_, err := snapshot.SaveSnapshot(ctx, w, man)
		return err
	})
	if err == nil {
		t.Error("a write session on a read-only repository succeeded")
	}
	if err := ro.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if after := bucketState(t, bucket); after != before {
		t.Errorf("the bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestReadOnlyStorageRefuses: the storage itself refuses every mutation, whatever Kopia asks.
func TestReadOnlyStorageRefuses(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	if err := bucket.WriteAll(ctx, "kopia.repository", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	st, release := NewStorage(bucket, "mem://x")
	defer release()
	ro := &ReadOnlyStorage{st: st}
	for name, err := range map[string]error{
		"put":       ro.PutBlob(ctx, "p1", sliceBytes("data"), blob.PutOptions{}),
		"delete":    ro.DeleteBlob(ctx, "kopia.repository"),
		"retention": ro.ExtendBlobRetention(ctx, "kopia.repository", blob.ExtendOptions{}),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
	if ok, _ := bucket.Exists(ctx, "p1"); ok {
		t.Error("put wrote")
	}
	if ok, _ := bucket.Exists(ctx, "kopia.repository"); !ok {
		t.Error("delete deleted")
	}
	if !ro.IsReadOnly() || ro.ConnectionInfo().Type != ReadOnlyStorageType {
		t.Error("the storage does not say it is read-only")
	}
	if _, err := OpenReadOnly(ctx, memblob.OpenBucket(nil), "mem://empty", "pw", t.TempDir()); !errors.Is(err, ErrNoRepository) {
		t.Errorf("empty bucket: %v", err)
	}
}
