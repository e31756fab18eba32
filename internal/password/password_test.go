package password

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, env, want, wantErr string
	}{
		{name: "file", file: write("ok", "s3cret pass\n", 0o600), want: "s3cret pass"},
		{name: "env", env: "from-env", want: "from-env"},
		{name: "empty file", file: write("empty", "\n", 0o600), wantErr: "is empty"},
		{name: "blank file", file: write("blank", "  \t \n", 0o600), wantErr: "holds only white space"},
		{name: "blank env", env: "   ", wantErr: "PVBACKUP_PASSWORD holds only white space"},
		{name: "none", wantErr: "no repository password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvPassword, tc.env)
			got, err := Load(tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Load = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if w := FileWarning(write("private", "pw", 0o600)); w != "" {
		t.Errorf("a 0600 file warns: %s", w)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		p := write("loose", "pw", mode)
		if w := FileWarning(p); !strings.Contains(w, "accessible by group or others") || !strings.Contains(w, "chmod 600 "+p) {
			t.Errorf("mode %04o: warning %q", mode, w)
		}
	}
}

// Only a small regular file is read: /dev/zero was read whole (6.2 GB in 30 s), and a named pipe
// with no writer blocked in open(2), where the first SIGTERM went unnoticed.
func TestLoadRefusesWhatIsNoPasswordFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link") // a Secret volume's files are symlinks: followed
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/dev/zero", "/dev/zero is a character device, not a regular file"},
		{fifo, fifo + " is a named pipe, not a regular file"},
		{dir, dir + " is a directory, not a regular file"},
		{big, "is larger than 4096 bytes"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := Load(tc.file)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) = %v; want %q", tc.file, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) still reading after 10 s", tc.file)
		}
	}
	if p, err := Load(link); err != nil || p != "pw" {
		t.Errorf("Load(symlink to a file) = %q, %v", p, err)
	}
}
