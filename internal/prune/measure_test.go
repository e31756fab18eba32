//go:build measure

package prune

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
)

// TestMeasurePrune takes PVBACKUP_MEASURE_BACKUPS (default 200) backups of a small tree, timing
// the repository's open (the step every mover pays) as snapshots accumulate, then prunes to the
// newest with quick maintenance in a child process (wall time and peak RSS), and times the open
// again. Run: go test -tags measure -run TestMeasurePrune -v -timeout 60m ./internal/prune/
func TestMeasurePrune(t *testing.T) {
	if url := os.Getenv("PVBACKUP_MEASURE_CHILD"); url != "" {
		w := &world{t: t, url: url}
		loc := newWorld(t, url, 0, 0)
		w.loc, w.cat = loc.loc, loc.cat
		res, err := Run(context.Background(), w.deps(), Config{Options: retention.Options{Policy: retention.Policy{Last: 1}, Now: time.Now()}, Maintenance: maintenance.Quick})
		if err != nil || res.Failed() {
			t.Fatalf("prune: %v %+v", err, res)
		}
		_, removed, _ := res.Counts()
		fmt.Printf("removed %d\n", removed)
		return
	}
	n := 200
	if s := os.Getenv("PVBACKUP_MEASURE_BACKUPS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	url := "file://" + t.TempDir()
	w := newWorld(t, url, 50, 4<<10)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Duration(n) * time.Minute)
	w.backup(ctx, "team-a", "b0000", t0)
	t.Logf("MEASURE open with 1 snapshot: %s", openTime(t, w))
	// The other backups share one open repository (a mover opens it once per backup; here that
	// would only add n opens to the set-up).
	r, closeFn, err := w.settings("team-a").Repos().Open(ctx, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		w.change(0.05)
		name := fmt.Sprintf("b%04d", i)
		res, err := mover.Backup(ctx, r, mover.BackupConfig{Source: w.src, Namespace: "team-a", PVC: "data", Backup: name}, func(mover.Event) {})
		if err != nil {
			t.Fatal(err)
		}
		w.record(ctx, "team-a", name, t0.Add(time.Duration(i)*time.Minute), res.SnapshotID)
		if i+1 == n/2 || i+1 == n {
			t.Logf("MEASURE open with %d snapshots: %s", i+1, openTime(t, w))
		}
	}
	closeFn()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeasurePrune$", "-test.v")
	cmd.Env = append(os.Environ(), "PVBACKUP_MEASURE_CHILD="+url)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("prune child: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("MEASURE prune of %d backups to 1 + quick maintenance: %s wall, peak RSS %d MiB", n, time.Since(start).Round(time.Millisecond), ru.Maxrss/1024)
	t.Logf("MEASURE open with 1 snapshot left after prune and quick maintenance: %s", openTime(t, w))
}

// openTime is the best of three opens of the namespace's repository.
func openTime(t *testing.T, w *world) time.Duration {
	best := time.Hour
	for range 3 {
		start := time.Now()
		_, closeFn, err := w.settings("team-a").Repos().Open(context.Background(), "team-a")
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
		closeFn()
	}
	return best.Round(time.Millisecond)
}
