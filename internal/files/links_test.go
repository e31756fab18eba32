package files

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
)

// TestCopyMakesHardLinksAgain: cp links again what the volume had as hard links (also of one
// directory, and with --exclude leaving some out); ls does not show the record.
func TestCopyMakesHardLinksAgain(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "d/e"), 0o755))
	must(os.WriteFile(filepath.Join(src, "d/x"), []byte("shared\n"), 0o644))
	must(os.Link(filepath.Join(src, "d/x"), filepath.Join(src, "d/e/x")))
	must(os.Link(filepath.Join(src, "d/x"), filepath.Join(src, "top")))
	f := newFixture(t)
	f.backupDir("shop", "data", src)
	ctx := context.Background()

	all, err := List(ctx, f.deps, ListConfig{Backup: "b1", Ref: ref("shop/data")})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if strings.Contains(e.Path, "pvbackup-hardlinks") {
			t.Errorf("ls shows the record: %+v", e)
		}
	}
	for _, tc := range []struct {
		name    string
		ref     string
		exclude []string
		linked  [][]string
		want    int64
	}{
		{"whole volume", "shop/data", nil, [][]string{{"d/x", "d/e/x", "top"}}, 2},
		{"one directory", "shop/data:/d", nil, [][]string{{"x", "e/x"}}, 1},
		{"excluded", "shop/data", []string{"top"}, [][]string{{"d/x", "d/e/x"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			res, err := Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref(tc.ref), Dest: dest, Exclude: tc.exclude})
			if err != nil {
				t.Fatalf("cp: %v %+v", err, res)
			}
			if res.HardLinks != tc.want {
				t.Errorf("%d hard links made, want %d", res.HardLinks, tc.want)
			}
			for _, g := range tc.linked {
				first, err := os.Lstat(filepath.Join(dest, g[0]))
				must(err)
				for _, p := range g[1:] {
					fi, err := os.Lstat(filepath.Join(dest, p))
					if err != nil || !os.SameFile(first, fi) {
						t.Errorf("%s is not a link of %s: %v", p, g[0], err)
					}
				}
			}
			if _, err := os.Lstat(filepath.Join(dest, hardlinks.Name)); err == nil {
				t.Error("cp wrote the record")
			}
		})
	}
}
