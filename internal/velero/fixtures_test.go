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

// fixtureDir returns a private copy of the fixture bucket (tests may tamper with it).
func fixtureDir(t *testing.T) string {
	t.Helper()
	return golden.Copy(t, "velero/v1.18/bucket")
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

// TestFixtureList: list reads the four backups Velero wrote.
func TestFixtureList(t *testing.T) {
	loc := openFixture(t, fixtureDir(t))
	entries, err := loc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Backup == nil {
			t.Fatalf("%s: %s", e.Name, e.Problem)
		}
		got = append(got, e.Name+" "+e.Backup.Phase+" "+e.Backup.FormatVersion)
	}
	want := "datamover-sts Completed 1.1.0,fs-deploy Completed 1.1.0,partial PartiallyFailed 1.1.0,resources-only Completed 1.1.0"
	if strings.Join(got, ",") != want {
		t.Errorf("list: %v\nwant %s", got, want)
	}
}

// volumeLine is what matters of a volume for these tests.
func volumeLine(v Volume) string {
	return fmt.Sprintf("%s %s uploader=%s mover=%s restorable=%v repo=%s snapshot=%v", v.Key(), v.Method, v.Uploader, v.DataMover, v.Restorable, v.Repository, v.SnapshotID != "")
}

// TestFixtureDescribe: each backup's volumes, how they were kept and whether they can be restored.
func TestFixtureDescribe(t *testing.T) {
	loc := openFixture(t, fixtureDir(t))
	for _, tc := range []struct {
		name       string
		volumes    []string
		namespaces string
		refusal    string
	}{
		{name: fixtureResources, namespaces: "vl-res"},
		{name: fixtureFS, namespaces: "vl-fs", volumes: []string{"vl-fs/data fs-backup uploader=kopia mover= restorable=true repo=kopia/vl-fs/ snapshot=true"}},
		{name: fixtureMover, namespaces: "vl-dm", volumes: []string{"vl-dm/data-db-0 data-mover uploader=kopia mover=velero restorable=true repo=kopia/vl-dm/ snapshot=true"}},
		{name: fixturePartial, namespaces: "vl-fs", volumes: []string{"vl-fs/data fs-backup uploader=kopia mover= restorable=true repo=kopia/vl-fs/ snapshot=true"}, refusal: "pass --allow-partially-failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := loc.Describe(context.Background(), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			var vols []string
			for _, v := range d.Volumes {
				vols = append(vols, volumeLine(v))
			}
			if strings.Join(vols, "\n") != strings.Join(tc.volumes, "\n") {
				t.Errorf("volumes (from %s):\n%s\nwant:\n%s", d.VolumesFrom, strings.Join(vols, "\n"), strings.Join(tc.volumes, "\n"))
			}
			if strings.Join(d.Namespaces, ",") != tc.namespaces {
				t.Errorf("namespaces %v, want %s", d.Namespaces, tc.namespaces)
			}
			if (tc.refusal == "") != (d.Refusal == "") || !strings.Contains(d.Refusal, tc.refusal) {
				t.Errorf("refusal %q, want %q", d.Refusal, tc.refusal)
			}
			if d.Objects == 0 || d.TarballFormat != "1.1.0" {
				t.Errorf("tarball: %d objects, format %q", d.Objects, d.TarballFormat)
			}
			// One copy of each object, never both the preferred-version and the plain one.
			seen := map[string]bool{}
			for _, o := range d.Tarball().Objects {
				k := o.GroupResource.String() + "/" + o.Namespace + "/" + o.Name
				if seen[k] {
					t.Errorf("%s read twice", k)
				}
				seen[k] = true
			}
		})
	}
}

// TestFixtureLegacyVolumes: without the volumeinfo file (Velero before 1.13) the volumes come from
// the PodVolumeBackups and from the DataUploads of the tarball joined through the claims'
// velero.io/data-upload-name, and they are the same.
func TestFixtureLegacyVolumes(t *testing.T) {
	dir := fixtureDir(t)
	withInfo := openFixture(t, dir)
	for _, name := range []string{fixtureFS, fixtureMover, fixturePartial} {
		d, err := withInfo.Describe(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "backups", name, name+suffixVolumeInfo)); err != nil {
			t.Fatal(err)
		}
		legacy, err := withInfo.Describe(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if legacy.VolumesFrom == d.VolumesFrom {
			t.Fatalf("%s: volumes still read from %s", name, d.VolumesFrom)
		}
		if len(legacy.Volumes) != len(d.Volumes) {
			t.Fatalf("%s: %d volumes without volumeinfo, %d with", name, len(legacy.Volumes), len(d.Volumes))
		}
		for i := range d.Volumes {
			a, b := d.Volumes[i], legacy.Volumes[i]
			if volumeLine(a) != volumeLine(b) || a.SnapshotID != b.SnapshotID {
				t.Errorf("%s:\nvolumeinfo: %s %s\nlegacy:     %s %s (from %s)", name, volumeLine(a), a.SnapshotID, volumeLine(b), b.SnapshotID, legacy.VolumesFrom)
			}
		}
	}
}
