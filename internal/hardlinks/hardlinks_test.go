//go:build !windows

package hardlinks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestScan: groups of paths that are one file, sorted; a file linked once, symlinks and
// directories are not.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "one"), []byte("1"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "a/two"), []byte("2"), 0o644))
	must(t, os.Link(filepath.Join(dir, "one"), filepath.Join(dir, "a/b/one-again")))
	must(t, os.Link(filepath.Join(dir, "one"), filepath.Join(dir, "a/one")))
	must(t, os.Link(filepath.Join(dir, "a/two"), filepath.Join(dir, "two")))
	must(t, os.WriteFile(filepath.Join(dir, "alone"), []byte("x"), 0o644))
	must(t, os.Symlink("one", filepath.Join(dir, "sym")))
	rec, err := Scan(context.Background(), dir)
	must(t, err)
	want := [][]string{{"a/b/one-again", "a/one", "one"}, {"a/two", "two"}}
	if rec == nil || !reflect.DeepEqual(rec.Groups, want) || rec.Links() != 3 {
		t.Fatalf("groups %v, want %v", rec, want)
	}
	if rec, err := Scan(context.Background(), t.TempDir()); err != nil || rec != nil {
		t.Fatalf("empty tree: %v, %v", rec, err)
	}
}

// TestReadRefuses: a record is read from a backup; what it may hold is bounded.
func TestReadRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"version":        `{"version":2,"groups":[["a","b"]]}`,
		"one path":       `{"version":1,"groups":[["a"]]}`,
		"absolute":       `{"version":1,"groups":[["/etc/passwd","b"]]}`,
		"parent":         `{"version":1,"groups":[["../x","b"]]}`,
		"not clean":      `{"version":1,"groups":[["a/./b","c"]]}`,
		"two groups":     `{"version":1,"groups":[["a","b"],["b","c"]]}`,
		"not JSON":       `version 1`,
		"larger":         `{"version":1,"groups":[["` + strings.Repeat("a", MaxBytes) + `","b"]]}`,
		"dot":            `{"version":1,"groups":[[".","b"]]}`,
		"nul":            "{\"version\":1,\"groups\":[[\"a\\u0000\",\"b\"]]}",
		"long":           `{"version":1,"groups":[["` + strings.Repeat("a", 5000) + `","b"]]}`,
		"trailing slash": `{"version":1,"groups":[["a/","b"]]}`,
	} {
		if _, err := Read(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	rec, err := Read(strings.NewReader(`{"version":1,"groups":[["a/x","b"]]}`))
	if err != nil || rec.Links() != 1 {
		t.Fatalf("a good record: %v %v", rec, err)
	}
	if got := rec.Within("a"); got.Groups != nil {
		t.Errorf("within a: %v (one path only)", got.Groups)
	}
}

// TestRelink: paths written apart become one file again; the directory keeps its time; a path
// that leads out of the target through a symlink, or a file that is not the same, is left alone.
func TestRelink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
	for _, p := range []string{"f", "d/g", "d/h", "other"} {
		must(t, os.WriteFile(filepath.Join(dir, p), []byte("same"), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("same"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "bigger"), []byte("not the same"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "out")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"f", "d/g", "d/h", "other", "bigger"} {
		must(t, os.Chtimes(filepath.Join(dir, p), old, old))
	}
	must(t, os.Chtimes(filepath.Join(outside, "victim"), old, old))
	must(t, os.Chtimes(filepath.Join(dir, "d"), old, old))
	rec := &Record{Version: 1, Groups: [][]string{{"f", "d/g", "d/h"}, {"other", "out/victim", "bigger", "missing"}}}
	res, err := Relink(context.Background(), dir, rec, false)
	must(t, err)
	if res.Linked != 2 || res.ProblemCount != 3 {
		t.Fatalf("result %+v: want 2 linked, 3 problems", res)
	}
	for _, p := range []string{"d/g", "d/h"} {
		if !same(t, filepath.Join(dir, "f"), filepath.Join(dir, p)) {
			t.Errorf("%s is not a link of f", p)
		}
	}
	if fi, _ := os.Stat(filepath.Join(outside, "victim")); fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Error("a file outside the target was linked")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "d")); !fi.ModTime().Equal(old) {
		t.Errorf("directory time %v, want %v", fi.ModTime(), old)
	}
	// Again, as an in-place sync does: what is linked stays so.
	res, err = Relink(context.Background(), dir, &Record{Version: 1, Groups: [][]string{{"f", "d/g", "d/h"}, {"gone", "f-too"}}}, true)
	if err != nil || res.Linked != 2 || res.ProblemCount != 0 {
		t.Fatalf("again: %+v %v", res, err)
	}
}

func same(t *testing.T, a, b string) bool {
	fa, err := os.Lstat(a)
	must(t, err)
	fb, err := os.Lstat(b)
	must(t, err)
	return os.SameFile(fa, fb)
}
