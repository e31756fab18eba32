//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// TestConcurrentCreates starts two `create` runs of one name to one location at the same
// moment: one backs up, the other fails at once naming the first; the backup left is whole
// (its manifest and its archive from the same run, readable with its password).
func TestConcurrentCreates(t *testing.T) {
	createNamespace(t, "race-src", "one")
	t.Setenv("PVBACKUP_LOCATION", "")
	t.Setenv("PVBACKUP_PASSWORD", "") // the runs read a password file
	// Written once, before any run: written by each run, one's truncation could meet the
	// other's read ("password file ... is empty").
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("password of the location\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"file", func(t *testing.T) string { return "file://" + t.TempDir() }},
		{"seaweedfs", func(t *testing.T) string {
			srv := s3server.SeaweedFS(t)
			srv.SetEnv(t)
			return srv.URL("race")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			var wg sync.WaitGroup
			results := make([]result, 2)
			start := make(chan struct{})
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					// One password: a second one on the same location is refused at its key
					// (keys/location.age) before any name is claimed; the race here is the name's.
					results[i] = run(t, "create", "same", "--to", url, "-n", "race-src", "--volumes", "none", "--password-file", pw)
				}()
			}
			close(start)
			wg.Wait()
			won, lost := -1, -1
			for i, r := range results {
				if r.code == 0 {
					won = i
				} else {
					lost = i
				}
			}
			if won < 0 || lost < 0 {
				t.Fatalf("want one run to succeed and one to fail, got exits %d and %d", results[0].code, results[1].code)
			}
			if !strings.Contains(results[lost].err, `backup "same"`) || !(strings.Contains(results[lost].err, "is being written by a run on") || strings.Contains(results[lost].err, "already exists")) {
				t.Fatalf("the losing run does not say who has the name:\n%s", results[lost].err)
			}
			// The backup is the winner's throughout: its password opens it.
			r := run(t, "restore", "same", "--from", url, "--password-file", pw, "--namespace-mapping", "race-src:race-dst-"+tc.name, "--dry-run")
			if r.code != 0 {
				t.Fatalf("restore with the winner's password: exit %d\n%s%s", r.code, r.out, r.err)
			}
		})
	}
}
