//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/copier"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// TestCopy copies backups from S3 (SeaweedFS) into Azure Blob (Azurite): an interrupted copy
// leaves no backup there and resumes; an incremental backup's copy moves at most 1.2x what its
// creation uploaded; with the first location deleted, the second lists, describes, verifies
// (all data read), browses, copies files out with every checksum equal, and restores.
func TestCopy(t *testing.T) {
	s3srv := s3server.SeaweedFS(t)
	s3srv.SetEnv(t)
	az := stores.Azure(t)
	az.SetEnv(t)
	from, to := s3srv.URL("first"), az.URL("second")
	t.Setenv("PVBACKUP_PASSWORD", "copy-pw")
	t.Setenv("PVBACKUP_LOCATION", from)
	ns := "copy-src"
	createNamespace(t, ns, "one", "two")
	if r := run(t, "create", "res-1", "-n", ns); r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	src := writeTree(t, 200)
	volumeBackup(t, from, "copy-pw", ns, "vol-1", src, time.Now().Add(time.Second))

	interruptedCopy(t, from, to)
	if r := run(t, "list", "--from", to); r.code != 0 || strings.Contains(r.out, "vol-1") {
		t.Fatalf("an interrupted copy shows a backup: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r := run(t, "copy", "vol-1", "res-1", "--to", to, "-o", "json")
	var res copier.Result
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil || len(res.Backups) != 2 || res.Repositories[0].Present == 0 {
		t.Fatalf("resumed copy: exit %d (want some blobs already there)\n%s%s", r.code, r.out, r.err)
	}

	// An incremental backup: 5% of the files changed.
	for i := 0; i < 10; i++ {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("d%02d", i%4), fmt.Sprintf("f%04d", i*20)), []byte(fmt.Sprintf("changed %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := volumeBackup(t, from, "copy-pw", ns, "vol-2", src, time.Now().Add(2*time.Second))
	created := m.Volumes[0].UploadedBytes + backupFilesSize(t, from, "vol-2")
	r = run(t, "copy", "--all", "--to", to, "-o", "json")
	res = copier.Result{}
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil {
		t.Fatalf("copy --all: exit %d\n%s%s", r.code, r.out, r.err)
	}
	t.Logf("MEASURE incremental backup: created %d bytes, copy moved %d (%.2fx)", created, res.Bytes, float64(res.Bytes)/float64(created))
	if float64(res.Bytes) > 1.2*float64(created) {
		t.Errorf("copying the incremental backup moved %d bytes, %.2fx the %d its creation uploaded; want at most 1.2x", res.Bytes, float64(res.Bytes)/float64(created), created)
	}

	ownRepository(t, from, az, ns, src)
	deleteAll(t, from)
	t.Setenv("PVBACKUP_LOCATION", to)
	for _, args := range [][]string{{"list"}, {"describe", "vol-2"}, {"verify", "--all", "--read-data", "100"}, {"ls", "vol-2", ns + "/data:/d01"}} {
		if r := run(t, args...); r.code != 0 || strings.Contains(r.out, "Incomplete") {
			t.Fatalf("%v on the copy: exit %d\n%s%s", args, r.code, r.out, r.err)
		}
	}
	dst := filepath.Join(t.TempDir(), "out")
	if r := run(t, "cp", "vol-2", ns+"/data", dst); r.code != 0 {
		t.Fatalf("cp from the copy: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if want, got := treeSums(t, src), treeSums(t, dst); !maps.Equal(want, got) {
		t.Fatalf("cp from the copy: %d files, checksums differ from the %d backed up", len(got), len(want))
	}
	if r := run(t, "restore", "res-1", "--namespace-mapping", ns+":copy-dst"); r.code != 0 {
		t.Fatalf("restore from the copy: exit %d\n%s%s", r.code, r.out, r.err)
	}
	otherKey(t, az)
}

// interruptedCopy stops a copy after a few blobs.
func interruptedCopy(t *testing.T, fromURL, toURL string) {
	ctx := context.Background()
	from, to := open(t, fromURL), open(t, toURL)
	n := 0
	stop := errors.New("interrupted")
	_, err := copier.Run(ctx, copier.Deps{From: from, To: to, Password: "copy-pw", AfterBlob: func() error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}}, copier.Config{All: true})
	if !errors.Is(err, stop) {
		t.Fatalf("interrupted copy: %v", err)
	}
}

// otherKey: a second location with a key of its own is refused, naming why.
func otherKey(t *testing.T, az *stores.Server) {
	other := az.URL("other")
	if _, err := keyring.Create(context.Background(), open(t, other), "another-password"); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "copy", "--all", "--to", other); r.code == 0 || !strings.Contains(r.err, "another location key") {
		t.Fatalf("copy into a location with another key: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

func open(t *testing.T, url string) *store.Location {
	t.Helper()
	loc, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	return loc
}

// backupFilesSize is the size of a backup's files (what create writes besides volume data).
func backupFilesSize(t *testing.T, url, name string) int64 {
	t.Helper()
	var n int64
	it := open(t, url).Bucket().List(&blob.ListOptions{Prefix: catalog.Key(name, "")})
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n += obj.Size
	}
}

// deleteAll removes every object of the location.
func deleteAll(t *testing.T, url string) {
	t.Helper()
	b := open(t, url).Bucket()
	it := b.List(&blob.ListOptions{})
	n := 0
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(context.Background(), obj.Key); err != nil {
			t.Fatal(err)
		}
		n++
	}
	t.Logf("deleted the %d objects of the first location", n)
}

// ownRepository: a second location whose namespace repository was made there by a backup of its
// own (same key: a copy brought the key first) is not merged with the first's.
func ownRepository(t *testing.T, from string, az *stores.Server, ns, src string) {
	merge := az.URL("merge")
	if r := run(t, "copy", "res-1", "--from", from, "--to", merge); r.code != 0 {
		t.Fatalf("copy res-1: exit %d\n%s%s", r.code, r.out, r.err)
	}
	volumeBackup(t, merge, "copy-pw", ns, "direct", src, time.Now())
	if r := run(t, "copy", "vol-2", "--from", from, "--to", merge); r.code == 0 || !strings.Contains(r.err, "repository of its own for namespace "+ns) {
		t.Fatalf("copy into a location with its own repository: exit %d\n%s%s", r.code, r.out, r.err)
	}
}
