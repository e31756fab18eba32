package velero

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// The fixtures: a bucket Velero 1.18.3 wrote in the lab (make velero-fixtures), with the backups
// testdata/velero/v1.18/README.md describes.
const (
	fixtureResources = "resources-only"
	fixtureFS        = "fs-deploy"
	fixtureMover     = "datamover-sts"
	fixturePartial   = "partial"
)

var fixtureBackups = []string{fixtureMover, fixtureFS, fixturePartial, fixtureResources}

// fixtureDir returns a private copy of the fixture bucket (tests may tamper with it).
func fixtureDir(t *testing.T) string {
	t.Helper()
	src := golden.Path("velero/v1.18/bucket")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the fixtures (record them with make velero-fixtures): %v", err)
	}
	return dst
}

// openFixture opens the location at dir as `velero --from-velero file://dir` does.
func openFixture(t *testing.T, dir string) *Location {
	t.Helper()
	loc, err := Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	return loc
}

// dirState is every file under dir with its size, modification time and content hash.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			lines = append(lines, fmt.Sprintf("%s/ %v", rel, info.Mode()))
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %d %s %v %x", rel, info.Size(), info.ModTime().UTC(), info.Mode(), sha256.Sum256(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// bucketState is what the bucket API says of every object: key, size, ETag and content hash.
func bucketState(t *testing.T, b *blob.Bucket) string {
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
		a, err := b.Attributes(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %d %s %x", obj.Key, obj.Size, a.ETag, sha256.Sum256(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
