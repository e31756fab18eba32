package repo

import (
	"context"
	"errors"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
)

func TestStorageFile(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, release := NewStorage(blob.PrefixedBucket(b, "kopia/ns/"), "file:///test")
	defer release()
	storageSuite(t, st)
}

func TestStorageMem(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	st, release := NewStorage(b, "mem://")
	defer release()
	storageSuite(t, st)
}

func TestKopiaOnFile(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kopiaRoundTrip(t, b, "file:///test/kopia/ns/", "", "")
}

func TestKopiaOnMem(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	kopiaRoundTrip(t, b, "mem://kopia/ns/", "", "")
}

func TestOpenWithoutRepository(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	_, err := Open(context.Background(), b, "mem://x", Config{Password: "p", CacheDir: t.TempDir()})
	if err == nil || !errors.Is(err, ErrNoRepository) {
		t.Fatalf("Open of an empty bucket without Create = %v; want ErrNoRepository", err)
	}
	if _, err := Open(context.Background(), b, "mem://x", Config{CacheDir: t.TempDir(), Create: true}); err == nil {
		t.Fatal("Open without a password succeeded; want an error")
	}
}
