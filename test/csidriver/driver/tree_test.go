package driver

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTreeKeepsModes: a snapshot restores every mode bit, setgid directories (what fsGroup
// volumes are full of), setuid and sticky included.
func TestTreeKeepsModes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := map[string]os.FileMode{
		"setgid-dir":        os.ModeDir | os.ModeSetgid | 0o755,
		"setgid-dir/sticky": os.ModeDir | os.ModeSticky | 0o777,
		"setgid-dir/file":   0o640,
		"setuid-file":       os.ModeSetuid | 0o750,
		"private":           0o600,
	}
	for _, name := range []string{"setgid-dir", "setgid-dir/sticky", "setgid-dir/file", "setuid-file", "private"} {
		p := filepath.Join(src, name)
		if want[name].IsDir() {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, want[name]&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := writeTree(&buf, src); err != nil {
		t.Fatal(err)
	}
	if err := readTree(&buf, dst); err != nil {
		t.Fatal(err)
	}
	for name, mode := range want {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
}

// TestTreeKeepsRoot: a snapshot carries the volume's root directory — its mode, owner and times —
// as real drivers' block or filesystem snapshots do, so a claim made from it starts with the
// source volume's root rather than the driver's own 0755 root:root directory.
func TestTreeKeepsRoot(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, os.ModeSetgid|0o770); err != nil {
		t.Fatal(err)
	}
	uid, gid := 1234, 5678
	if os.Geteuid() != 0 {
		uid, gid = os.Getuid(), os.Getgid() // only root may give a directory away
	}
	if err := os.Lchown(src, uid, gid); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	atime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(src, atime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeTree(&buf, src); err != nil {
		t.Fatal(err)
	}
	if err := readTree(&buf, dst); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := os.ModeDir | os.ModeSetgid | 0o770; fi.Mode() != want {
		t.Errorf("root mode %v, want %v", fi.Mode(), want)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("root owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	if !fi.ModTime().Equal(mtime) {
		t.Errorf("root mtime %v, want %v", fi.ModTime(), mtime)
	}
	if got := time.Unix(st.Atim.Unix()); !got.Equal(atime) {
		t.Errorf("root atime %v, want %v", got, atime)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "file")); err != nil || string(b) != "x" {
		t.Errorf("file: %q, %v", b, err)
	}
}

// A single snapshot copies a volume while its pods write: a file appended to during the copy is
// copied as it was when its header was written (tar refuses more bytes than its header says), a
// file that shrank is padded; the archive stays valid either way.
func TestTreeOfAVolumeBeingWritten(t *testing.T) {
	src := t.TempDir()
	log := filepath.Join(src, "log")
	if err := os.WriteFile(log, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // an appending writer, as a database's log; bounded to 16 MiB more
		defer close(done)
		f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		chunk := bytes.Repeat([]byte("y"), 4096)
		for i := 0; i < 4096; i++ {
			f.Write(chunk)
		}
	}()
	for i := 0; ; i++ {
		var buf bytes.Buffer
		if err := writeTree(&buf, src); err != nil {
			t.Fatalf("copy %d of a volume being written: %v", i, err)
		}
		tr := tar.NewReader(&buf)
		for {
			if _, err := tr.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("copy %d does not read back: %v", i, err)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				t.Fatalf("copy %d does not read back: %v", i, err)
			}
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

// copyLive writes exactly the announced size: a file that grew is cut, one that shrank is padded.
func TestCopyLive(t *testing.T) {
	for _, c := range []struct {
		in   string
		size int64
		want string
	}{{"abcdef", 3, "abc"}, {"abc", 5, "abc\x00\x00"}, {"abc", 3, "abc"}} {
		var out bytes.Buffer
		if err := copyLive(&out, strings.NewReader(c.in), c.size); err != nil || out.String() != c.want {
			t.Errorf("copyLive(%q, %d) = %q, %v; want %q", c.in, c.size, out.String(), err, c.want)
		}
	}
}
