// Package golden compares test output with files under the repository's testdata/.
// Run `go test ./... -update` to rewrite them after an intended change, then review the diff.
package golden

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Path returns the absolute path of name under the repository's testdata/.
func Path(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", name)
}

// Assert fails the test when got differs from testdata/name.
func Assert(t *testing.T, name string, got []byte) {
	t.Helper()
	p := Path(name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (create it with -update): %v", err)
	}
	if string(want) != string(got) {
		t.Errorf("output differs from testdata/%s (rerun with -update if intended):\n--- want\n%s\n--- got\n%s", name, want, got)
	}
}

// Copy copies the tree testdata/name into a new temporary directory and returns it, for tests
// that change, or must prove they did not change, a recorded fixture (the Velero bucket).
func Copy(t *testing.T, name string) string {
	t.Helper()
	src, dst := Path(name), t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy testdata/%s: %v", name, err)
	}
	return dst
}
