package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// cp's open descriptors do not grow with the tree: 5,000 directories wide and 300 deep copy
// under a limit of 128 open files (macOS's default is 256; cp kept one per directory until it
// ended).
func TestCopyBoundsOpenFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("backs up 5,300 directories")
	}
	f := newFixture(t)
	src := t.TempDir()
	files := 0
	write := func(dir string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(dir), 0o644); err != nil {
			t.Fatal(err)
		}
		files++
	}
	for i := range 50 {
		for j := range 100 {
			write(filepath.Join(src, "wide", fmt.Sprint(i), fmt.Sprint(j)))
		}
	}
	deep := filepath.Join(src, "deep")
	for range 300 {
		deep = filepath.Join(deep, "d")
		write(deep)
	}
	f.backupDir("shop", "data", src)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 128
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Error(err)
		}
	}()
	dest := t.TempDir()
	res, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/data"), Dest: dest})
	if err != nil {
		n := len(res.Errors)
		if n > 3 {
			res.Errors = res.Errors[:3]
		}
		t.Fatalf("cp under a limit of 128 open files: %v (%d errors, the first: %+v)", err, n, res.Errors)
	}
	if res.Files != int64(files) || res.Dirs < 5300 {
		t.Errorf("copied %d files and %d directories, want %d and 5,300+", res.Files, res.Dirs, files)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, want := tree(t, dest), tree(t, src); len(got) != len(want) {
		t.Errorf("the copy has %d entries, the source %d", len(got), len(want))
	}
}

// A directory stays open while a file is queued in it; idle ones are closed past maxIdleDirs.
func TestDirCacheBound(t *testing.T) {
	dest := t.TempDir()
	root, err := os.OpenRoot(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	d := newDirCache(root)
	defer d.close()
	held, _ := d.acquire(".")
	var busy []*destDir
	for i := range 200 {
		rel := fmt.Sprint(i)
		if err := root.Mkdir(rel, 0o700); err != nil {
			t.Fatal(err)
		}
		dd, err := d.acquire(rel)
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			busy = append(busy, dd) // a file still being written
			continue
		}
		d.release(dd)
	}
	if n := d.opened(); n != 1+len(busy)+maxIdleDirs {
		t.Errorf("%d directories open, want the destination, %d busy and %d idle", n, len(busy), maxIdleDirs)
	}
	for _, dd := range busy {
		if _, err := dd.Stat("."); err != nil {
			t.Errorf("a busy directory was closed: %v", err)
		}
		d.release(dd)
	}
	d.release(held)
	if _, err := root.Stat("."); err != nil {
		t.Errorf("the destination was closed: %v", err)
	}
}

// As root (owners restored), cp drops the setuid and setgid bits of files unless KeepSetID: a
// tenant's setuid file, root's after the copy, would run as root.
func TestCopyDropsSetIDAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners are restored by root only")
	}
	f := newFixture(t)
	src := t.TempDir()
	for name, mode := range map[string]os.FileMode{"suid": 0o755 | os.ModeSetuid, "sgid": 0o755 | os.ModeSetgid, "plain": 0o755} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	f.backupDir("shop", "data", src)
	for _, keep := range []bool{false, true} {
		dest := t.TempDir()
		if _, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("shop/data"), Dest: dest, Owners: true, KeepSetID: keep}); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]os.FileMode{"suid": os.ModeSetuid, "sgid": os.ModeSetgid, "plain": 0} {
			fi, err := os.Stat(filepath.Join(dest, name))
			if err != nil {
				t.Fatal(err)
			}
			if !keep {
				want = 0
			}
			if got := fi.Mode() & (os.ModeSetuid | os.ModeSetgid); got != want || fi.Mode().Perm() != 0o755 {
				t.Errorf("keep-setid %v: %s has mode %v, want %v with rwxr-xr-x", keep, name, fi.Mode(), want)
			}
		}
	}
}
