package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

const testPassword = "files-test-password"

// fixture is a file:// location with one backup whose volumes are real Kopia snapshots.
type fixture struct {
	t        *testing.T
	location string
	deps     Deps
	vols     []catalog.Volume
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	loc := "file://" + filepath.Join(t.TempDir(), "loc")
	f := &fixture{t: t, location: loc}
	l, err := store.Open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	f.deps = Deps{Manifests: catalog.New(l), Repos: f.repos()}
	return f
}

// repos opens the fixture's repositories as the plugin does.
func (f *fixture) repos() *repo.Service {
	return &repo.Service{Location: f.location, Key: repo.OneKey(testPassword)}
}

// backupDir uploads dir as volume ns/pvc with the mover's own engine.
func (f *fixture) backupDir(ns, pvc, dir string, opts ...func(*mover.Settings)) {
	f.t.Helper()
	s := mover.Settings{Location: f.location, Namespace: ns, Password: testPassword, CacheDir: f.t.TempDir()}
	for _, o := range opts {
		o(&s)
	}
	res, err := mover.RunBackup(context.Background(), s,
		mover.BackupConfig{Source: dir, PVC: pvc, Backup: "b1"}, func(mover.Event) {})
	if err != nil {
		f.t.Fatal(err)
	}
	f.add(catalog.Volume{Namespace: ns, PVC: pvc, Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID})
}

func (f *fixture) add(v catalog.Volume) {
	f.t.Helper()
	f.vols = append(f.vols, v)
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed, Volumes: f.vols}
	cat := f.deps.Manifests.(*catalog.Catalog)
	// backup.json is write-once: the fixture's growing manifest replaces the previous one.
	_ = cat.Location().Bucket().Delete(context.Background(), catalog.Key("b1", catalog.ManifestFile))
	if err := cat.WriteManifest(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
}

// node is an entry of a hand-made (possibly hostile) snapshot.
type node struct {
	name     string
	data     string // file content, or a symlink's target
	symlink  bool
	children []node // a directory when non-nil
	// raw, when set, writes the entry's object itself (crafted_test.go): a file declared as size
	// bytes, a symlink, or with rawDir a directory.
	raw    func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error)
	size   int64
	rawDir bool
}

// hostile writes a snapshot of tree with Kopia's API, names as given (Kopia's own uploader
// could never make "..").
func (f *fixture) hostile(ns, pvc string, tree []node) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.repos().Ensure(ctx, ns); err != nil {
		f.t.Fatal(err)
	}
	r, closeFn, err := f.repos().Open(ctx, ns)
	if err != nil {
		f.t.Fatal(err)
	}
	defer closeFn()
	var id string
	err = kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		root, err := writeDir(ctx, w, tree)
		if err != nil {
			return err
		}
		man := &snapshot.Manifest{Source: mover.SourceInfo(ns, pvc), StartTime: fs.UTCTimestamp(time.Now().UnixNano()), EndTime: fs.UTCTimestamp(time.Now().UnixNano()),
			RootEntry: &snapshot.DirEntry{Name: pvc, Type: snapshot.EntryTypeDirectory, Permissions: 0o755, ObjectID: root}}
		mid, err := snapshot.SaveSnapshot(ctx, w, man)
		id = string(mid)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.add(catalog.Volume{Namespace: ns, PVC: pvc, Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: id})
}

func writeDir(ctx context.Context, w kopiarepo.RepositoryWriter, nodes []node) (object.ID, error) {
	dm := &snapshot.DirManifest{StreamType: "kopia:directory", Summary: &fs.DirectorySummary{}}
	mtime := fs.UTCTimestamp(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	for _, n := range nodes {
		de := &snapshot.DirEntry{Name: n.name, ModTime: mtime}
		switch {
		case n.children != nil:
			oid, err := writeDir(ctx, w, n.children)
			if err != nil {
				return object.EmptyID, err
			}
			de.Type, de.Permissions, de.ObjectID, de.DirSummary = snapshot.EntryTypeDirectory, 0o755, oid, &fs.DirectorySummary{MaxModTime: mtime}
		case n.raw != nil:
			oid, err := n.raw(ctx, w)
			if err != nil {
				return object.EmptyID, err
			}
			de.Type, de.Permissions, de.FileSize, de.ObjectID = snapshot.EntryTypeFile, 0o644, n.size, oid
			switch {
			case n.symlink:
				de.Type, de.Permissions = snapshot.EntryTypeSymlink, 0o777
			case n.rawDir:
				de.Type, de.Permissions, de.DirSummary = snapshot.EntryTypeDirectory, 0o755, &fs.DirectorySummary{}
			}
		default:
			ow := w.NewObjectWriter(ctx, object.WriterOptions{})
			if _, err := ow.Write([]byte(n.data)); err != nil {
				return object.EmptyID, err
			}
			oid, err := ow.Result()
			ow.Close()
			if err != nil {
				return object.EmptyID, err
			}
			de.Type, de.Permissions, de.FileSize, de.ObjectID = snapshot.EntryTypeFile, 0o644, int64(len(n.data)), oid
			if n.symlink {
				de.Type, de.Permissions = snapshot.EntryTypeSymlink, 0o777
			}
		}
		dm.Entries = append(dm.Entries, de)
	}
	return snapshotfs.WriteDirManifest(ctx, w, "", dm, "")
}

// tree describes a local directory: relative path → type, mode, content hash or link target.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || strings.HasSuffix(p, partSuffix) {
			return nil
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			out[rel] = fi.Mode().Perm().String() + " " + hex.EncodeToString(h[:8]) + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, data string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2023, 5, 6, 7, 8, 9, 123456789, time.UTC)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "alpha\n", 0o644)
	write("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write("logs/x.log", "log x\n", 0o600)
	write("logs/old/y.log", "log y\n", 0o640)
	write("data/big.bin", strings.Repeat("0123456789abcdef", 70000), 0o644)
	if err := os.Symlink("../a.txt", filepath.Join(dir, "bin", "a-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

func ref(s string) Ref {
	r, err := ParseRef(s)
	if err != nil {
		panic(err)
	}
	return r
}

func TestCopyTreeEqualsOriginalAndResumes(t *testing.T) {
	f := newFixture(t)
	src := sample(t)
	f.backupDir("shop", "data", src)
	dest := filepath.Join(t.TempDir(), "out")
	ctx := context.Background()
	var last CopyProgress
	res, err := Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/data"), Dest: dest, Progress: func(p CopyProgress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	want, got := tree(t, src), tree(t, dest)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: copied but not in the source", k)
		}
	}
	if res.Files != 5 || res.Symlinks != 1 || last.Bytes != res.Bytes || last.TotalBytes != res.Bytes {
		t.Errorf("result %+v, last progress %+v", res, last)
	}
	// A rerun skips complete files and rewrites one that was cut short; the part file an
	// interrupted run left (here a symlink to a file outside) is replaced, never followed. A new
	// file is written under its own name, its time set last: one a killed run left with the
	// right size but the time of its writing is not taken as complete either.
	if err := os.Truncate(filepath.Join(dest, "logs", "x.log"), 2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "a.txt"), []byte("ALPHA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dest, "logs", ".x.log"+partSuffix)); err != nil {
		t.Fatal(err)
	}
	res, err = Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/data"), Dest: dest})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || res.Skipped != 3 {
		t.Errorf("rerun wrote %d and skipped %d files, want 2 and 3", res.Files, res.Skipped)
	}
	got = tree(t, dest)
	for _, k := range []string{"logs/x.log", "a.txt"} {
		if got[k] != want[k] {
			t.Errorf("resumed file %s: %q, want %q", k, got[k], want[k])
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
		t.Errorf("the file a stale part symlink pointed at holds %q (%v), want it untouched", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dest, "logs", ".x.log"+partSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale part file is still there: %v", err)
	}
}

// writeSparse gives the file its exact size and content whatever the zero runs, and writes no
// zero block.
func TestWriteSparse(t *testing.T) {
	data := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	const buf = 1 << 20 // writeSparse's read size
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no zeros", data(3*holeBlock+5, 'x')},
		{"leading hole", append(data(2*holeBlock, 0), data(10, 'x')...)},
		{"trailing hole", append(data(10, 'x'), data(3*holeBlock, 0)...)},
		{"only zeros", data(buf+holeBlock, 0)},
		{"hole ends exactly at a read", append(data(holeBlock, 'x'), data(buf-holeBlock, 0)...)},
		{"data after a read boundary hole", append(data(buf, 0), data(7, 'y')...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			var done atomic.Int64
			n, err := int64(0), f.Truncate(int64(len(tc.in))) // as writeData does
			if err == nil {
				n, err = writeSparse(f, bytes.NewReader(tc.in), &done)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil || n != int64(len(tc.in)) || done.Load() != n {
				t.Fatalf("wrote %d (counted %d), %v; want %d", n, done.Load(), err, len(tc.in))
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tc.in) {
				t.Fatalf("file holds %d bytes (%v), not the %d given", len(got), err, len(tc.in))
			}
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			if zeros := len(tc.in) - len(bytes.ReplaceAll(tc.in, []byte{0}, nil)); zeros >= 2*holeBlock && st.Blocks*512 >= int64(len(tc.in)) {
				t.Errorf("%d bytes on disk for %d bytes with %d zeros: the zero blocks were written", st.Blocks*512, len(tc.in), zeros)
			}
		})
	}
}

// cp writes a file from its Kopia contents: a file of several contents (a seek table), compressed
// or not, with a run of zeros, comes out as it was and sparse; the object reader, used for an
// entry that is not a snapshot's, writes the same bytes.
func TestCopyWritesFilesFromContents(t *testing.T) {
	f := newFixture(t)
	src := t.TempDir()
	big := make([]byte, 20<<20) // random, then zeros, then text
	rand.NewChaCha8([32]byte{1}).Read(big[:8<<20])
	copy(big[13<<20:], bytes.Repeat([]byte("compressible text, "), 7<<20/19))
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	f.backupDir("plain", "data", src)
	f.backupDir("packed", "data", src, func(s *mover.Settings) { s.Compression = "zstd-fastest" })
	ctx := context.Background()
	for _, ns := range []string{"plain", "packed"} {
		t.Run(ns, func(t *testing.T) {
			s, err := open(ctx, f.deps, "b1", ref(ns+"/data:/big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			c := newContents(s.rep)
			if c == nil {
				t.Fatal("the repository's contents cannot be read directly: cp would use the object reader")
			}
			e := s.entry.(fs.File)
			oid, ok := objectID(e)
			if !ok {
				t.Fatal("a snapshot's file has no object ID")
			}
			ps, err := object.VerifyObject(ctx, kopiaContents{c.rep}, oid)
			if err != nil {
				t.Fatal(err)
			}
			compressed := 0 // Kopia compresses contents, not objects, in the repositories the mover makes
			idx, _ := oid.IndexObjectID()
			table, _, _ := idx.ContentID()
			for _, id := range ps {
				if id == table {
					continue // the seek table's own content
				}
				info, err := c.rep.ContentInfo(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if info.CompressionHeaderID != 0 {
					compressed++
				}
			}
			if len(ps) < 2 || (ns == "packed") != (compressed > 0) {
				t.Fatalf("the file is %d contents, %d compressed: not the case this test is for", len(ps), compressed)
			}

			dest := t.TempDir()
			if _, err := Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref(ns + "/data"), Dest: dest}); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dest, "big.bin")
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("copied file differs from the original (%d bytes, %v)", len(got), err)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil || st.Blocks*512 > int64(len(big))-4<<20 {
				t.Errorf("%d bytes on disk for %d with 5 MiB of zeros (%v): the zeros were written", st.Blocks*512, len(big), err)
			}

			// The object reader's path.
			out, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			n, err := (&copier{}).writeData(ctx, out, e)
			if err != nil || n != int64(len(big)) {
				t.Fatalf("object reader wrote %d bytes, %v", n, err)
			}
			if got, err := os.ReadFile(out.Name()); err != nil || !bytes.Equal(got, big) {
				t.Errorf("object reader's copy differs from the original (%d bytes, %v)", len(got), err)
			}
		})
	}
}

func TestCopyGlobs(t *testing.T) {
	f := newFixture(t)
	f.backupDir("shop", "data", sample(t))
	for _, tc := range []struct {
		name             string
		include, exclude []string
		from             string
		want             []string
	}{
		{"include by name at any depth", []string{"*.log"}, nil, "/", []string{"logs/old/y.log", "logs/x.log"}},
		{"include a directory takes its tree", []string{"bin"}, nil, "/", []string{"bin/a-link", "bin/run.sh"}},
		{"exclude prunes a directory", nil, []string{"logs", "data"}, "/", []string{"a.txt", "bin/a-link", "bin/run.sh"}},
		{"include by path, exclude by name", []string{"logs/*"}, []string{"old"}, "/", []string{"logs/x.log"}},
		{"a sub directory", nil, nil, "/logs", []string{"old/y.log", "x.log"}},
		{"one file", nil, nil, "/bin/run.sh", []string{"run.sh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			_, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/data:" + tc.from), Dest: dest, Include: tc.include, Exclude: tc.exclude})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k, v := range tree(t, dest) {
				if !strings.HasPrefix(v, "dir ") {
					got = append(got, k)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("copied %v, want %v", got, tc.want)
			}
		})
	}
	if err := ValidateGlobs("include", []string{"[a-"}); err == nil {
		t.Error("a bad pattern passed validation")
	}
}

// Whatever a snapshot holds, nothing is written outside the destination.
func TestCopyRefusesToLeaveDestination(t *testing.T) {
	f := newFixture(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	f.hostile("evil", "data", []node{
		{name: "..", data: "dotdot"},
		{name: "../escaped", data: "up"},
		{name: "abs", data: outside, symlink: true},
		{name: "abs/through", data: "via name"},
		{name: "up", data: "../outside", symlink: true},
		{name: "ok.txt", data: "fine"},
		{name: "d", children: []node{{name: "..", children: []node{{name: "x", data: "nested"}}}}},
	})
	dest := filepath.Join(base, "dest")
	// An earlier run (or anyone) left a symlink out of the destination where the snapshot has a directory.
	f.hostile("evil", "pre", []node{{name: "sub", children: []node{{name: "x", data: "through a local symlink"}}}})
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dest, "sub")); err != nil {
		t.Fatal(err)
	}
	for _, pvc := range []string{"data", "pre"} {
		res, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("evil/" + pvc), Dest: dest})
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("%s: err %v, want ErrIncomplete", pvc, err)
		}
		if len(res.Refused)+len(res.Errors) == 0 {
			t.Errorf("%s: nothing refused: %+v", pvc, res)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) > 0 {
		t.Errorf("written outside the destination: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(base, "escaped")); err == nil {
		t.Error("../escaped was written")
	}
	b, err := os.ReadFile(filepath.Join(dest, "ok.txt"))
	if err != nil || string(b) != "fine" {
		t.Errorf("ok.txt = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "abs")); err != nil || l != outside {
		t.Errorf("symlink abs = %q, %v: links are kept as they were", l, err)
	}
	// ls never shows a path an entry is not.
	list, err := List(context.Background(), f.deps, ListConfig{Backup: "b1", Ref: ref("evil/data"), Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if strings.Contains(e.Path, "..") {
			t.Errorf("ls shows %s", e.Path)
		}
	}
}

func TestListAndCat(t *testing.T) {
	f := newFixture(t)
	f.backupDir("shop", "data", sample(t))
	f.add(catalog.Volume{Namespace: "shop", PVC: "kept", Mode: "snapshot", Status: catalog.VolumeCompleted, VolumeSnapshot: "vs1"})
	ctx := context.Background()
	list, err := List(ctx, f.deps, ListConfig{Backup: "b1", Ref: ref("shop/data:/bin")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Path != "/bin/a-link" || list[0].Target != "../a.txt" || list[1].Mode != "-rwxr-xr-x" || list[1].Type != TypeFile {
		t.Errorf("ls /bin = %+v", list)
	}
	all, err := List(ctx, f.deps, ListConfig{Backup: "b1", Ref: ref("shop/data"), Recursive: true})
	if err != nil || len(all) != 11 {
		t.Errorf("ls -R: %d entries, %v", len(all), err)
	}
	var out bytes.Buffer
	if n, err := Cat(ctx, f.deps, "b1", ref("shop/data:/logs/old/y.log"), &out); err != nil || n != 6 || out.String() != "log y\n" {
		t.Errorf("cat = %q, %d, %v", out.String(), n, err)
	}
	for _, tc := range []struct{ ref, want string }{
		{"shop/data:/bin", "is a directory"},
		{"shop/data:/nope", "no such file"},
		{"shop/kept:/x", "VolumeSnapshot vs1"},
		{"shop/other:/x", "has no volume shop/other"},
	} {
		if _, err := Cat(ctx, f.deps, "b1", ref(tc.ref), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cat %s: %v, want %q", tc.ref, err, tc.want)
		}
	}
}

// cat streams: a file much larger than the memory it may use goes through.
func TestCatStreamsLargeSparseFile(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 256 MiB")
	}
	f := newFixture(t)
	src := t.TempDir()
	const size = 256 << 20
	fh, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("tail"), size-4); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	f.backupDir("shop", "sparse", src)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	w := &peakWriter{}
	n, err := Cat(context.Background(), f.deps, "b1", ref("shop/sparse:/big"), w)
	if err != nil || n != size {
		t.Fatalf("cat: %d bytes, %v", n, err)
	}
	t.Logf("live heap %d MiB before, at most %d MiB while streaming %d MiB", before.HeapAlloc>>20, w.peak>>20, size>>20)
	if string(w.head) != "head" || string(w.tail[:]) != "tail" {
		t.Errorf("content head %q tail %q", w.head, w.tail)
	}
	if grown := w.peak - before.HeapAlloc; w.peak > before.HeapAlloc && grown > 64<<20 {
		t.Errorf("heap grew by %d MiB while streaming %d MiB", grown>>20, size>>20)
	}
	// cp keeps it sparse.
	dest := t.TempDir()
	if _, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/sparse:/big"), Dest: dest}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dest, "big"))
	if err != nil || fi.Size() != size {
		t.Fatalf("copied %v, %v", fi, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > size/4 {
		t.Errorf("the copy uses %d MiB on disk: its holes were written", st.Blocks*512>>20)
	}
}

type peakWriter struct {
	n     int64
	head  []byte
	tail  [4]byte
	peak  uint64
	calls int
}

func (w *peakWriter) Write(p []byte) (int, error) {
	if w.head == nil {
		w.head = append([]byte(nil), p[:4]...)
	}
	if len(p) >= 4 {
		copy(w.tail[:], p[len(p)-4:])
	} else {
		for _, b := range p {
			w.tail = [4]byte{w.tail[1], w.tail[2], w.tail[3], b}
		}
	}
	w.n += int64(len(p))
	if w.calls++; w.calls%512 == 0 { // live heap, garbage collected first
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		w.peak = max(w.peak, m.HeapAlloc)
	}
	return len(p), nil
}

// kopiaContents is what Kopia's object package reads contents through.
type kopiaContents struct{ kopiarepo.DirectRepository }

func (k kopiaContents) GetContent(ctx context.Context, id content.ID) ([]byte, error) {
	return k.ContentReader().GetContent(ctx, id)
}
