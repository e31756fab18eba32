package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// dailyConfig is the user simulated by --mode daily.
type dailyConfig struct {
	perDay    int  // backups a day, spread evenly over it
	fullEvery int  // days between full maintenance runs
	noMaint   bool // no maintenance at all: a location that only ever sees create
}

// gap is the simulated time between a day's steps (backup, quick, full maintenance).
const gap = 5 * time.Minute

// runDaily simulates a user's daily CI job on a simulated clock: perDay backups (each in a new
// repository session, as each mover opens one), then quick maintenance with Kopia's safety
// margins, and full maintenance every fullEvery days. The open is measured (real time) right after
// the backup that makes each count of snapshots, and after that day's maintenance.
func runDaily(weed, work, counts string, reps int, dc dailyConfig) error {
	points, err := parseCounts(counts)
	if err != nil {
		return err
	}
	if dc.perDay < 1 || dc.perDay > 24*12 || dc.fullEvery < 1 {
		return fmt.Errorf("--per-day must be 1..288 and --full-every ≥ 1")
	}
	total := slices.Max(points)
	days := (total + dc.perDay - 1) / dc.perDay
	locURL, stop, err := startS3(weed, work)
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	// The simulated days end about now: blobs nobody simulated (none here) would look current.
	clock := repo.NewClock(time.Now().Add(-time.Duration(days) * 24 * time.Hour))
	t0 := clock.Now()
	ns := fmt.Sprintf("daily-%d", dc.perDay)
	s := mover.Settings{Location: locURL, Namespace: ns, Password: password, CacheDir: work, Clock: clock}
	d := maintenance.Deps{Repos: &repo.Service{Location: locURL, Key: repo.OneKey(password), Clock: clock}}
	if d.Location, err = store.Open(ctx, locURL); err != nil {
		return err
	}
	defer d.Location.Close()
	src := filepath.Join(work, "src-"+ns)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	maint := fmt.Sprintf("quick maintenance (safety full) daily, full (safety full) every %d days", dc.fullEvery)
	if dc.noMaint {
		maint = "no maintenance at all"
	}
	fmt.Printf("daily mode: %d backup(s) a simulated day over %d days, each in a new repository session; %s\n", dc.perDay, days, maint)
	fmt.Printf("open = what a mover does before its data moves (repo.Open over S3, no local cache), real time, median of %d\n", reps)
	// The machine is shared: a repository with one snapshot, opened in turn with the measured one,
	// shows what the load of the moment does to an open (the ratio is the figure that counts).
	ctl := s
	ctl.Namespace, ctl.Clock = "control", nil
	if err := os.MkdirAll(filepath.Join(work, "src-control"), 0o755); err != nil {
		return err
	}
	if err := backupOnce(ctx, ctl, filepath.Join(work, "src-control"), 1); err != nil {
		return err
	}
	fmt.Printf("%-9s %-5s %-30s %8s %9s %16s %10s %7s  %s\n", "snapshots", "day", "state", "indexes", "open s", "open+previous s", "control s", "ratio", "index blobs by kind")
	start := time.Now()
	var spent struct{ backup, quick, full, measure time.Duration }
	timed := func(acc *time.Duration, f func() error) error {
		t := time.Now()
		err := f()
		*acc += time.Since(t)
		return err
	}
	report := func(n, day int, label string) error {
		return timed(&spent.measure, func() error {
			m, c, err := measureWithControl(ctx, s, ctl, d.Location, reps)
			if err != nil {
				return err
			}
			kinds, err := indexKinds(ctx, d.Location, ns)
			if err != nil {
				return err
			}
			fmt.Printf("%-9d %-5d %-30s %8d %9.3f %16.3f %10.3f %7.2f  %s\n", n, day, label, m.indexBlobs, m.open.Seconds(), m.find.Seconds(),
				c.open.Seconds(), m.open.Seconds()/c.open.Seconds(), kinds)
			return nil
		})
	}
	n := 0
	for day := 1; day <= days; day++ {
		for b := 0; b < dc.perDay && n < total; b++ {
			advanceTo(clock, t0.Add(time.Duration(day-1)*24*time.Hour+time.Duration(b)*24*time.Hour/time.Duration(dc.perDay)))
			n++
			if err := timed(&spent.backup, func() error { return backupOnce(ctx, s, src, n) }); err != nil {
				return err
			}
			if slices.Contains(points, n) && !dc.noMaint {
				if err := report(n, day, "after the backup"); err != nil {
					return err
				}
			}
		}
		if day%50 == 0 {
			fmt.Fprintf(os.Stderr, "bench-repo: day %d, %d snapshots, %.0fs\n", day, n, time.Since(start).Seconds())
		}
		if dc.noMaint {
			if slices.Contains(points, n) || day == days {
				if err := report(n, day, "no maintenance ever"); err != nil {
					return err
				}
			}
			continue
		}
		clock.Advance(gap)
		if err := timed(&spent.quick, func() error { return maintain(ctx, d, ns, maintenance.Quick, maintenance.SafetyFull) }); err != nil {
			return fmt.Errorf("day %d, quick maintenance: %w", day, err)
		}
		label := "after the day's quick maint."
		if day%dc.fullEvery == 0 {
			clock.Advance(gap)
			if err := timed(&spent.full, func() error { return maintain(ctx, d, ns, maintenance.Full, maintenance.SafetyFull) }); err != nil {
				return fmt.Errorf("day %d, full maintenance: %w", day, err)
			}
			label = "after the day's quick+full"
		}
		if slices.Contains(points, n) || day == days {
			if err := report(n, day, label); err != nil {
				return err
			}
		}
	}
	fmt.Printf("run: %.0fs (backups %.0fs, quick maintenance %.0fs, full %.0fs, measures %.0fs); simulated %s → %s\n",
		time.Since(start).Seconds(), spent.backup.Seconds(), spent.quick.Seconds(), spent.full.Seconds(), spent.measure.Seconds(),
		t0.Format(time.DateOnly), clock.Now().Format(time.DateOnly))
	return nil
}

// measureWithControl measures s and the control repository in turn, reps times each.
func measureWithControl(ctx context.Context, s, ctl mover.Settings, loc *store.Location, reps int) (state, state, error) {
	var ms, cs []state
	for range reps {
		m, err := measure(ctx, s, loc, s.Namespace, 1)
		if err != nil {
			return m, m, err
		}
		c, err := measure(ctx, ctl, loc, ctl.Namespace, 1)
		if err != nil {
			return m, c, err
		}
		ms, cs = append(ms, m), append(cs, c)
	}
	return medianState(ms), medianState(cs), nil
}

func medianState(st []state) state {
	var opens, finds []time.Duration
	for _, m := range st {
		opens, finds = append(opens, m.open), append(finds, m.find)
	}
	return state{indexBlobs: st[0].indexBlobs, open: median(opens), find: median(finds)}
}

// advanceTo moves the clock forward to t (never back).
func advanceTo(c *repo.Clock, t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

// backupOnce is one mover's backup: a file changed, a new repository session, one snapshot.
func backupOnce(ctx context.Context, s mover.Settings, src string, i int) error {
	if err := os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i%20)), []byte(fmt.Sprintf("backup %d %s", i, strings.Repeat("x", i))), 0o644); err != nil {
		return err
	}
	r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
	if errors.Is(err, repo.ErrNoRepository) {
		if err = s.Repos().Ensure(ctx, s.Namespace); err == nil {
			r, closeFn, err = s.Repos().Open(ctx, s.Namespace)
		}
	}
	if err != nil {
		return err
	}
	defer closeFn()
	if _, err := mover.Backup(ctx, r, mover.BackupConfig{Source: src, Namespace: s.Namespace, PVC: "data", Backup: "b" + strconv.Itoa(i)}, func(mover.Event) {}); err != nil {
		return fmt.Errorf("backup %d of %s: %w", i, s.Namespace, err)
	}
	return nil
}

// indexKinds counts the repository's epoch index blobs by kind: xn uncompacted (and how many of
// them are in the open epoch), xs single-epoch compactions, xr range checkpoints, xe epoch
// markers, xw deletion watermarks.
func indexKinds(ctx context.Context, loc *store.Location, ns string) (string, error) {
	kinds := map[string]int{}
	epoch, open := -1, map[int]int{}
	it := loc.Bucket().List(&blob.ListOptions{Prefix: "kopia/" + ns + "/x"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		name := strings.TrimPrefix(obj.Key, "kopia/"+ns+"/")
		if len(name) < 2 {
			continue
		}
		kind := name[:2]
		kinds[kind]++
		num, _, _ := strings.Cut(name[2:], "_")
		e, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		switch kind {
		case "xe":
			epoch = max(epoch, e)
		case "xn":
			open[e]++
		}
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	// Kopia writes marker xe<N+1> when it closes epoch N: the open epoch is the newest marker.
	return fmt.Sprintf("%s; write epoch %d holds %d xn", strings.Join(parts, ", "), max(epoch, 0), open[max(epoch, 0)]), nil
}
