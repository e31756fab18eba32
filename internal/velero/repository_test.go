package velero

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The files every fixture volume holds (hack/velero-lab.sh, WRITE_DATA).
func wantFiles(ns string) map[string]string {
	var a strings.Builder
	for i := 1; i <= 100; i++ {
		a.WriteString("line " + itoa(i) + "\n")
	}
	return map[string]string{
		"hello.txt":     "hello from " + ns + "\n",
		"dir/a.txt":     a.String(),
		"dir/sub/b.bin": strings.Repeat("b", 4096),
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// readTree reads every file under dir into a map by path.
func readTree(ctx context.Context, t *testing.T, dir fs.Directory, prefix string, out map[string]string) {
	t.Helper()
	err := fs.IterateEntries(ctx, dir, func(ctx context.Context, e fs.Entry) error {
		p := prefix + e.Name()
		switch e := e.(type) {
		case fs.Directory:
			readTree(ctx, t, e, p+"/", out)
		case fs.File:
			r, err := e.Open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			data, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			out[p] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readFixtureVolumes opens, read-only, the repository of every restorable volume of the fixtures
// and checks its snapshot holds the files the lab wrote.
func readFixtureVolumes(t *testing.T, loc *Location) {
	t.Helper()
	ctx := context.Background()
	pw, err := ResolvePassword(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range []string{fixtureFS, fixtureMover, fixturePartial} {
		d, err := loc.Describe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Volumes {
			r, err := loc.OpenRepository(ctx, v.Namespace, pw, t.TempDir())
			if err != nil {
				t.Fatalf("%s %s: %v", name, v.Key(), err)
			}
			man, root, err := r.Snapshot(ctx, v.SnapshotID)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			readTree(ctx, t, root, "", got)
			want := wantFiles(v.Namespace)
			if len(got) != len(want) {
				t.Errorf("%s %s: files %v", name, v.Key(), keysOf(got))
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s %s: %s holds %d bytes, not the %d written", name, v.Key(), p, len(got[p]), len(w))
				}
			}
			t.Logf("%s %s: snapshot %s of %s (%s), %d files", name, v.Key(), v.SnapshotID, man.Source, man.Description, man.Stats.TotalFileCount)
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != 3 {
		t.Errorf("read %d volumes, want 3", n)
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFixtureRepositories: Velero's Kopia repositories (written by Velero's Kopia fork) open with
// this build's Kopia, read-only, with Velero's default password; each snapshot holds the files
// written; and nothing in the bucket changed: not a file, a size, a time or a byte.
func TestFixtureRepositories(t *testing.T) {
	dir := fixtureDir(t)
	before := dirState(t, dir)
	loc := openFixture(t, dir)
	if _, err := loc.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	readFixtureVolumes(t, loc)
	if after := dirState(t, dir); after != before {
		t.Errorf("the fixture bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestFixtureWrongPassword: a wrong password fails at once, naming the repository and where the
// password came from.
func TestFixtureWrongPassword(t *testing.T) {
	dir := fixtureDir(t)
	loc := openFixture(t, dir)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("not-velero's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := ResolvePassword(context.Background(), pwFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = loc.OpenRepository(context.Background(), "vl-fs", pw, t.TempDir())
	took := time.Since(start)
	if !errors.Is(err, repo.ErrWrongPassword) || !strings.Contains(err.Error(), "(kopia/vl-fs/)") || !strings.Contains(err.Error(), "--velero-password-file "+pwFile) {
		t.Fatalf("err = %v", err)
	}
	t.Logf("a wrong password failed in %s", took)
	if took > 5*time.Second {
		t.Errorf("a wrong password took %s", took)
	}
	if _, err := loc.OpenRepository(context.Background(), "vl-res", pw, t.TempDir()); !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("a namespace without a repository: %v", err)
	}
}

// TestFixtureS3ReadOnly: the same over S3 (gofakes3): list, describe and reading every volume
// leave every object's key, size, ETag and content as they were.
func TestFixtureS3ReadOnly(t *testing.T) {
	s3ReadOnly(t, s3server.Fake(t))
}

// s3ReadOnly uploads the fixtures under prefix velero/lab of srv's bucket, reads them as
// `velero list`, `velero describe` and a restore's Kopia reads do, and compares the bucket before
// and after.
func s3ReadOnly(t *testing.T, srv *s3server.Server) {
	ctx := context.Background()
	srv.SetEnv(t)
	url := srv.URL("velero/lab")
	b, err := blob.OpenBucket(ctx, srv.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = filepathWalkFiles(fixtureDir(t), func(rel string, data []byte) error {
		return b.WriteAll(ctx, "velero/lab/"+rel, data, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	before := bucketState(t, b)
	loc, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	if _, err := loc.List(ctx); err != nil {
		t.Fatal(err)
	}
	readFixtureVolumes(t, loc)
	if after := bucketState(t, b); after != before {
		t.Errorf("the bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
	t.Logf("%d objects unchanged", strings.Count(before, "\n")+1)
}

func filepathWalkFiles(dir string, fn func(rel string, data []byte) error) error {
	return filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), data)
	})
}
