//go:build !windows

package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"
	"github.com/kopia/kopia/snapshot/restore"
)

// TestFileOutput: small files written by the restore's own output have their contents, mode
// (setuid, setgid, sticky included), owner and time; a name that exists is overwritten (by
// Kopia's output); pages of zeros become holes when sparse.
func TestFileOutput(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	when := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	files := []struct {
		name string
		mode os.FileMode
		data []byte
	}{
		{"plain", 0o644, []byte("hello\n")},
		{"setuid", os.ModeSetuid | 0o4755&0o777, []byte("#!/bin/sh\n")},
		{"setgid-sticky", os.ModeSetgid | os.ModeSticky | 0o640, []byte("x")},
		{"private", 0o600, nil},
		{"holes", 0o644, append(append(make([]byte, 3*pageSize), "middle"...), make([]byte, 2*pageSize)...)},
		{"exists", 0o640, []byte("the backup's")},
	}
	uid, gid := 1234, 5678
	if os.Geteuid() != 0 {
		uid, gid = os.Getuid(), os.Getgid()
	}
	for _, f := range files {
		p := filepath.Join(src, f.name)
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "exists"), []byte("an older, longer file"), 0o644); err != nil {
		t.Fatal(err)
	}
	fso := &restore.FilesystemOutput{TargetPath: dst, OverwriteFiles: true, IgnorePermissionErrors: true, WriteSparseFiles: true}
	if err := fso.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := newFileOutput(fso)
	for _, f := range files {
		e, err := localfs.NewEntry(filepath.Join(src, f.name))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := out.WriteFile(context.Background(), f.name, e.(fs.File), func(c int64) { n += c }); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		p := filepath.Join(dst, f.name)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, f.data) || n != int64(len(f.data)) {
			t.Errorf("%s: %q (%d bytes reported), %v; want %q", f.name, got, n, err, f.data)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != f.mode || int(st.Uid) != uid || int(st.Gid) != gid || !fi.ModTime().Equal(when) {
			t.Errorf("%s: mode %v owner %d:%d time %v; want %v %d:%d %v", f.name, fi.Mode(), st.Uid, st.Gid, fi.ModTime(), f.mode, uid, gid, when)
		}
		if f.name == "holes" && st.Blocks*512 > 2*pageSize {
			t.Errorf("holes: %d bytes on disk, want the zero pages left as holes", st.Blocks*512)
		}
	}
}

// countingFile counts the readers opened on a file.
type countingFile struct {
	fs.File
	mu    sync.Mutex
	opens int
}

func (f *countingFile) Open(ctx context.Context) (fs.Reader, error) {
	f.mu.Lock()
	f.opens++
	f.mu.Unlock()
	return f.File.Open(ctx)
}

// A big file is written as stretches read at once, each by a reader of its own (Kopia's output
// reads it as one stream): its contents, mode, time and reported bytes are whole; with sparse it
// goes to Kopia's output, which leaves its holes.
func TestFileOutputBigFile(t *testing.T) {
	src := t.TempDir()
	when := time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)
	data := make([]byte, 5<<20+12345)
	_, _ = rand.Read(data)
	p := filepath.Join(src, "disk.img")
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	for _, sparse := range []bool{false, true} {
		dst := t.TempDir()
		fso := &restore.FilesystemOutput{TargetPath: dst, IgnorePermissionErrors: true, SkipOwners: true, WriteSparseFiles: sparse}
		if err := fso.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		out := newFileOutput(fso)
		out.bigMin, out.segment = 2<<20, 1<<20
		e, err := localfs.NewEntry(p)
		if err != nil {
			t.Fatal(err)
		}
		f := &countingFile{File: e.(fs.File)}
		var n int64
		if err := out.WriteFile(context.Background(), "disk.img", f, func(c int64) { n += c }); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, "disk.img"))
		if err != nil || !bytes.Equal(got, data) || n != int64(len(data)) {
			t.Errorf("sparse %v: %d bytes restored (%d reported, %v); want the %d backed up", sparse, len(got), n, err, len(data))
		}
		fi, err := os.Stat(filepath.Join(dst, "disk.img"))
		if err != nil || fi.Mode() != 0o640 || !fi.ModTime().Equal(when) {
			t.Errorf("sparse %v: %v %v (%v); want -rw-r----- %v", sparse, fi.Mode(), fi.ModTime(), err, when)
		}
		if want := map[bool]int{false: 6, true: 1}[sparse]; f.opens != want {
			t.Errorf("sparse %v: %d readers opened; want %d", sparse, f.opens, want)
		}
	}
}
