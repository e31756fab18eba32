package velero

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// FuzzReadTarball: no tarball, however made, panics the reader or escapes its limits; whatever it
// returns is one copy per object, each named by a clean path.
func FuzzReadTarball(f *testing.F) {
	for _, name := range []string{fixtureFS, fixtureMover, fixtureResources} {
		if data, err := os.ReadFile(golden.Path(filepath.Join("velero/v1.18/bucket/backups", name, name+suffixTarball))); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte{})
	lim := DefaultLimits
	lim.Entries, lim.ResourcesBytes, lim.EntryBytes = 1000, 1<<20, 1<<16
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := readTarball(bytes.NewReader(data), lim)
		if err != nil {
			return
		}
		seen := map[objectKey]bool{}
		for _, o := range res.Objects {
			k := objectKey{o.GroupResource, o.Namespace, o.Name}
			if seen[k] {
				t.Fatalf("%v read twice", k)
			}
			seen[k] = true
			if o.Name == "" || o.Name == "." || o.Name == ".." || o.Version == "" {
				t.Fatalf("object %+v", k)
			}
		}
	})
}

// FuzzVolumeInfo: any volumeinfo file decodes within its limit, or is refused, without a panic;
// a volume judged restorable always names its repository and a snapshot or says it was empty.
func FuzzVolumeInfo(f *testing.F) {
	for _, name := range []string{fixtureFS, fixtureMover, fixturePartial} {
		if data, err := os.ReadFile(golden.Path(filepath.Join("velero/v1.18/bucket/backups", name, name+suffixVolumeInfo))); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var infos []volumeInfo
		if decodeGzipJSON(data, 1<<20, "volumeinfo", &infos) != nil {
			return
		}
		vols, err := fromVolumeInfo(infos)
		if err != nil {
			return
		}
		for _, v := range vols {
			if v.Restorable && !v.Empty && (v.Repository != RepositoryPrefix(v.Namespace) || !snapshotIDRE.MatchString(v.SnapshotID) || !validNamespace(v.Namespace)) {
				t.Fatalf("restorable volume %+v", v)
			}
		}
	})
}
