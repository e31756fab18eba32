package driver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
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
