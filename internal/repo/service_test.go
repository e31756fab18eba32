package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kopiarepo "github.com/kopia/kopia/repo"
)

// TestService: Open and Check refuse a namespace without a repository, Ensure creates it where
// the namespace's prefix is, Check names a wrong key, and a read-only open refuses every write.
func TestService(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := map[string]string{"shop": "pw-shop", "web": "pw-web"}
	s := &Service{Location: "file://" + dir + "?prefix=loc", CacheDir: t.TempDir(),
		Key: func(ns string) (string, error) { return keys[ns], nil }}

	if _, _, err := s.Open(ctx, "shop"); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("Open before Ensure: %v, want ErrNoRepository", err)
	}
	if _, _, err := s.OpenReadOnly(ctx, "shop"); !errors.Is(err, ErrNoRepository) || !strings.Contains(err.Error(), "nothing was backed up from there yet") {
		t.Fatalf("OpenReadOnly before Ensure: %v, want ErrNoRepository as Open says it", err)
	}
	if err := s.Check(ctx, "shop"); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("Check before Ensure: %v, want ErrNoRepository", err)
	}
	if err := s.Ensure(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "loc", "kopia", "shop", "kopia.repository")); err != nil {
		t.Fatalf("the repository is not at <prefix>/kopia/<ns>/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "loc", "kopia", "shop", "kopia.repository.attrs")); !os.IsNotExist(err) {
		t.Fatalf("a file location's blobs get no attribute sidecars: %v", err)
	}
	if err := s.Check(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx, "web"); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("Check of another namespace: %v, want ErrNoRepository", err)
	}
	keys["shop"] = "another"
	if err := s.Check(ctx, "shop"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("Check with another key: %v, want ErrWrongPassword", err)
	}
	keys["shop"] = "pw-shop"
	if _, _, err := s.Open(ctx, "Not_A_Namespace"); err == nil {
		t.Fatal("Open of an invalid namespace name succeeded")
	}

	before := tree(t, dir)
	r, closeFn, err := s.OpenReadOnly(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := putManifest(ctx, r); err == nil {
		t.Error("a read-only open took a write")
	}
	closeFn()
	if after := tree(t, dir); after != before {
		t.Errorf("a read-only open changed the location:\n--- before\n%s\n--- after\n%s", before, after)
	}
	r, closeFn, err = s.Open(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if err := putManifest(ctx, r); err != nil {
		t.Fatalf("a read-write open refused a write: %v", err)
	}
}

func putManifest(ctx context.Context, r *Repository) error {
	return kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		_, err := w.PutManifest(ctx, map[string]string{"type": "test"}, map[string]string{"k": "v"})
		return err
	})
}

// tree lists the files below dir with their sizes.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d\n", strings.TrimPrefix(path, dir), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
