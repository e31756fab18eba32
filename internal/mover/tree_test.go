package mover

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeSpec says what makeTree writes.
type treeSpec struct {
	smallFiles int   // tiny files spread over directories of 100
	sparse     int64 // size of a sparse file (0 = none)
}

var fixedTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// makeTree writes every kind of entry a volume holds: empty dirs and files, symlinks (relative,
// absolute, dangling), unicode names, odd modes, old times, a sparse file and many small files.
func makeTree(t *testing.T, dir string, spec treeSpec) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(data), 0o600))
		must(os.Chmod(p, mode))
		must(os.Chtimes(p, fixedTime, fixedTime))
	}
	must(os.MkdirAll(filepath.Join(dir, "empty-dir", "nested-empty"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "private"), 0o700))
	write("empty-file", "", 0o644)
	write("private/secret.txt", "only the owner", 0o600)
	write("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write("readonly.txt", "read only", 0o444)
	write("ünïcødé/日本語 ファイル.txt", "unicode name", 0o644)
	write("ünïcødé/emoji-🎉.txt", "party", 0o640)
	write("spaces and 'quotes'/a\"b.txt", "odd characters", 0o644)
	must(os.Symlink("bin/run.sh", filepath.Join(dir, "link-relative")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "link-absolute")))
	must(os.Symlink("does/not/exist", filepath.Join(dir, "link-dangling")))
	must(os.Symlink("empty-dir", filepath.Join(dir, "link-to-dir")))
	if spec.sparse > 0 {
		p := filepath.Join(dir, "sparse.img")
		f, err := os.Create(p)
		must(err)
		_, err = f.WriteAt([]byte("head"), 0)
		must(err)
		_, err = f.WriteAt([]byte("tail"), spec.sparse-4)
		must(err)
		must(f.Close())
	}
	for i := range spec.smallFiles {
		p := filepath.Join(dir, "many", fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if i%100 == 0 {
			must(os.MkdirAll(filepath.Dir(p), 0o755))
		}
		must(os.WriteFile(p, []byte(fmt.Sprintf("small file %d\n", i)), 0o644))
	}
	if os.Geteuid() == 0 { // owners can only be given away (and restored) by root
		must(os.Lchown(filepath.Join(dir, "private/secret.txt"), 1234, 5678))
		must(os.Lchown(filepath.Join(dir, "link-relative"), 1234, 5678))
	}
	// Directory times last: writing into a directory changes its mtime.
	must(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || strings.HasPrefix(p, filepath.Join(dir, "many")) {
			return err
		}
		return os.Chtimes(p, fixedTime, fixedTime)
	}))
}

// entryInfo is what a restore must reproduce for one path.
type entryInfo struct {
	Mode   fs.FileMode
	Size   int64
	MTime  int64 // seconds
	UID    uint32
	GID    uint32
	Link   string
	SHA256 string
}

// describeTree returns every path under dir with its mode, owner, time, link target and checksum.
func describeTree(t *testing.T, dir string) map[string]entryInfo {
	t.Helper()
	out := map[string]entryInfo{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		e := entryInfo{Mode: info.Mode(), UID: st.Uid, GID: st.Gid}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.Link, err = os.Readlink(p)
		case info.Mode().IsRegular():
			e.Size, e.MTime = info.Size(), info.ModTime().Unix()
			e.SHA256, err = fileSum(p)
		case info.IsDir():
			// No time: Kopia records a directory's time as the newest time in its subtree (the
			// kopia CLI does the same), so a directory older than its contents comes back newer.
		}
		out[rel] = e
		return err
	})
	if err != nil {
		t.Fatalf("describe %s: %v", dir, err)
	}
	return out
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compareTrees fails the test with every difference between two descriptions.
func compareTrees(t *testing.T, want, got map[string]entryInfo) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		t.Fatalf("restored tree differs from the source in %d ways:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}
