package password

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
