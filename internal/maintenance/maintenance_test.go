package maintenance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// TestStatusAndMaintain: status reports a repository's size, snapshots and owner; maintain runs
// and status then shows when; a second run while the lease is held fails naming the holder.
func TestStatusAndMaintain(t *testing.T) {
	ctx := context.Background()
	d, loc := backedUp(t, "team-a", "team-b")

	sts, err := Status(ctx, d, selection.NamespaceFilter{Include: []string{"team-a"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || sts[0].Namespace != "team-a" || sts[0].Snapshots != 1 || sts[0].Owner != repo.ClientUser+"@"+repo.ClientHost || sts[0].Size.Blobs == 0 || !sts[0].LastMaintenance.IsZero() || sts[0].Error != "" {
		t.Fatalf("status before maintenance: %+v", sts)
	}

	res, err := Run(ctx, d, Config{Mode: Quick, Safety: SafetyFull})
	if err != nil || len(res.Repositories) != 2 || res.Failed() {
		t.Fatalf("maintain: %v %+v", err, res)
	}
	sts, err = Status(ctx, d, selection.NamespaceFilter{}, true)
	if err != nil || len(sts) != 2 || sts[0].LastMaintenance.IsZero() || time.Since(sts[0].LastMaintenance) > time.Minute || !sts[0].LastFull.IsZero() {
		t.Fatalf("status after quick maintenance: %v %+v", err, sts)
	}
	if sts, _ := Status(ctx, d, selection.NamespaceFilter{}, false); len(sts) != 2 || sts[1].Size.Bytes == 0 || sts[1].Snapshots != 0 {
		t.Fatalf("bucket-only status: %+v", sts)
	}

	held, err := lease.Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)
	_, err = Run(ctx, d, Config{Mode: Full, Safety: SafetyFull})
	if !errors.Is(err, lease.ErrHeld) || !strings.Contains(err.Error(), held.Record().Owner+" is running prune") {
		t.Fatalf("maintain while a prune holds the location: %v", err)
	}
}

func TestParseSafety(t *testing.T) {
	for in, want := range map[string]string{"full": "", "none": "", "fast": `--safety="fast": use full or none`} {
		_, err := ParseSafety(in)
		if (err == nil) != (want == "") || (err != nil && err.Error() != want) {
			t.Errorf("ParseSafety(%q) = %v; want %q", in, err, want)
		}
	}
}

// backedUp is a file:// location with one backup of a one-file volume in each namespace's
// repository (password "pw"), and the Deps that maintain it.
func backedUp(t *testing.T, namespaces ...string) (Deps, *store.Location) {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		if _, err := mover.RunBackup(ctx, mover.Settings{Location: url, Namespace: ns, Password: "pw", CacheDir: t.TempDir()}, mover.BackupConfig{Source: src, PVC: "data"}, func(mover.Event) {}); err != nil {
			t.Fatal(err)
		}
	}
	loc, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loc.Close() })
	return Deps{Location: loc, Repos: &repo.Service{Location: url, Key: repo.OneKey("pw")}}, loc
}
