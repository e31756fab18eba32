// Command bench-repo measures what every mover pays before moving data — opening the namespace's
// repository and finding the volume's previous snapshot — with 1, 100 and 1,000 snapshots in the
// repository, on SeaweedFS. `make bench-repo`.
//
// --mode daily (the default) is what a user sees: day after day on a simulated clock (repo.Clock),
// a backup in a new repository session (as each mover opens one), then quick maintenance
// (safety full) as `prune`/`repo maintain` from a daily CI job, full maintenance once a week.
// Kopia closes and compacts index epochs only when their blobs span 24 h, so only simulated days
// show its compaction. --mode burst makes the snapshots within minutes through one open
// repository and then runs quick (safety full) and full (safety none) maintenance: the worst case,
// every index blob in one open epoch.
//
//	go run ./hack/bench-repo --weed .local/bin/weed --work .local/bench-repo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kopia/kopia/snapshot"
	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

const password = "bench-password-not-secret"

func main() {
	weed := flag.String("weed", ".local/bin/weed", "SeaweedFS binary (hack/tools.sh seaweedfs)")
	work := flag.String("work", ".local/bench-repo", "work directory (emptied)")
	counts := flag.String("counts", "1,100,1000", "snapshots in each repository")
	reps := flag.Int("reps", 5, "opens measured per state; the median is reported")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	mode := flag.String("mode", "daily", "daily (simulated days, maintenance every day) or burst (all snapshots within minutes)")
	var dc dailyConfig
	flag.IntVar(&dc.perDay, "per-day", 1, "daily mode: backups per simulated day (24 = hourly CI)")
	flag.IntVar(&dc.fullEvery, "full-every", 7, "daily mode: full maintenance every this many days")
	flag.BoolVar(&dc.noMaint, "no-maintenance", false, "daily mode: never run maintenance (a location that only sees create)")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-repo:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	run := func() error { return runBurst(*weed, *work, *counts, *reps) }
	switch *mode {
	case "daily":
		run = func() error { return runDaily(*weed, *work, *counts, *reps, dc) }
	case "burst":
	default:
		fmt.Fprintf(os.Stderr, "bench-repo: --mode=%q: use daily or burst\n", *mode)
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-repo:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type state struct {
	indexBlobs int
	open, find time.Duration // medians: open+close, and open+previous snapshot+close
}

// startS3 empties work and starts SeaweedFS in it; the location URL is returned.
func startS3(weed, work string) (string, func(), error) {
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Join(work, "weed"), 0o755); err != nil {
		return "", nil, err
	}
	srv, stop, err := s3server.StartSeaweedFS(weed, filepath.Join(work, "weed"))
	if err != nil {
		return "", nil, err
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": "us-east-1"} {
		os.Setenv(k, v)
	}
	fmt.Printf("SeaweedFS %s\n", srv.Endpoint)
	return srv.URL("bench-repo"), stop, nil
}

func parseCounts(counts string) ([]int, error) {
	var out []int
	for _, c := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--counts: %q is not a positive number", c)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBurst(weed, work, counts string, reps int) error {
	ns, err := parseCounts(counts)
	if err != nil {
		return err
	}
	loc, stop, err := startS3(weed, work)
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	fmt.Printf("burst mode; open = what a mover does before its data moves (repo.Open over S3, no local cache), median of %d\n", reps)
	fmt.Printf("%-10s %-34s %8s %9s %20s\n", "snapshots", "state", "indexes", "open s", "open+previous s")
	for _, n := range ns {
		ns := fmt.Sprintf("open-%d", n)
		s := mover.Settings{Location: loc, Namespace: ns, Password: password, CacheDir: work}
		took, err := fill(ctx, s, filepath.Join(work, "src-"+ns), n)
		if err != nil {
			return err
		}
		fmt.Printf("%-10d %-34s (%d backups in %.0fs)\n", n, "", n, took.Seconds())
		d := maintenance.Deps{Repos: &repo.Service{Location: loc, Key: repo.OneKey(password)}}
		if d.Location, err = store.Open(ctx, loc); err != nil {
			return err
		}
		steps := []struct {
			label string
			do    func() error
		}{
			{"before maintenance", func() error { return nil }},
			{"after quick maintenance (safety full)", func() error { return maintain(ctx, d, ns, maintenance.Quick, maintenance.SafetyFull) }},
			{"after full maintenance (safety none)", func() error { return maintain(ctx, d, ns, maintenance.Full, maintenance.SafetyNone) }},
		}
		for _, st := range steps {
			if err := st.do(); err != nil {
				return fmt.Errorf("%s, %s: %w", ns, st.label, err)
			}
			m, err := measure(ctx, s, d.Location, ns, reps)
			if err != nil {
				return err
			}
			fmt.Printf("%-10d %-34s %8d %9.3f %20.3f\n", n, st.label, m.indexBlobs, m.open.Seconds(), m.find.Seconds())
		}
		_ = d.Location.Close()
	}
	return nil
}

func maintain(ctx context.Context, d maintenance.Deps, ns string, mode maintenance.Mode, safety maintenance.Safety) error {
	rr := maintenance.MaintainRepository(ctx, d, ns, mode, safety)
	if rr.Error != "" {
		return errors.New(rr.Error)
	}
	return nil
}

// fill makes n snapshots of one small volume, a file changed between them, through one open
// repository (as n daily backups of a PVC would leave it, without n process starts).
func fill(ctx context.Context, s mover.Settings, src string, n int) (time.Duration, error) {
	start := time.Now()
	if err := os.MkdirAll(src, 0o755); err != nil {
		return 0, err
	}
	if err := s.Repos().Ensure(ctx, s.Namespace); err != nil {
		return 0, err
	}
	r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
	if err != nil {
		return 0, err
	}
	defer closeFn()
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i%20)), []byte(fmt.Sprintf("backup %d %s", i, strings.Repeat("x", i))), 0o644); err != nil {
			return 0, err
		}
		if _, err := mover.Backup(ctx, r, mover.BackupConfig{Source: src, Namespace: s.Namespace, PVC: "data", Backup: "b" + strconv.Itoa(i)}, func(mover.Event) {}); err != nil {
			return 0, fmt.Errorf("backup %d of %s: %w", i, s.Namespace, err)
		}
	}
	return time.Since(start), nil
}

func measure(ctx context.Context, s mover.Settings, loc *store.Location, ns string, reps int) (state, error) {
	var m state
	var opens, finds []time.Duration
	for range reps {
		t := time.Now()
		_, closeFn, err := s.Repos().Open(ctx, s.Namespace)
		if err != nil {
			return m, err
		}
		closeFn()
		opens = append(opens, time.Since(t))

		t = time.Now()
		r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
		if err != nil {
			return m, err
		}
		prev, err := snapshot.FindPreviousManifests(ctx, r, mover.SourceInfo(ns, "data"), nil)
		closeFn()
		if err != nil || len(prev) == 0 {
			return m, fmt.Errorf("previous snapshot of %s: %v (%d found)", ns, err, len(prev))
		}
		finds = append(finds, time.Since(t))
	}
	m.open, m.find = median(opens), median(finds)
	it := loc.Bucket().List(&blob.ListOptions{Prefix: "kopia/" + ns + "/x"})
	for {
		if _, err := it.Next(ctx); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return m, err
		}
		m.indexBlobs++
	}
	return m, nil
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
