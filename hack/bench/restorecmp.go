package main

// The restore suite (--suite restore): the mover's restore against `kopia snapshot restore` on
// the random tree, many interleaved pairs judged on their median, to tell a real gap from the
// machine's noise. On SeaweedFS three restores take turns each round: the CLI from its own
// repository (the compress suite's measure), the CLI connected to the mover's repository (the same
// snapshot, packs and format: only the restore engines differ) and the mover; on a filesystem
// the CLI's own repository and the mover's (their layouts differ, so no shared one).

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// kopiaOn is the kopia CLI connected to a repository another target wrote (the mover's on S3):
// it only restores, the last snapshot of the tree its owner backed up.
type kopiaOn struct {
	name, dir string
	srv       *s3server.Server
	owner     *moverT
}

func (k *kopiaOn) label() string { return k.name }
func (k *kopiaOn) setup() error {
	prefix := k.owner.location[len("s3://"+k.srv.Bucket+"/"):]
	prefix = prefix[:strings.IndexByte(prefix, '?')] + "/kopia/bench/"
	_ = os.RemoveAll(k.dir)
	_, err := execRun(kopiaEnv(k.dir), kopiaBin, "repository", "connect", "s3", "--cache-directory", filepath.Join(k.dir, "cache"),
		"--bucket", k.srv.Bucket, "--prefix", prefix, "--endpoint", strings.TrimPrefix(k.srv.Endpoint, "http://"), "--disable-tls",
		"--region", "us-east-1", "--access-key", k.srv.AccessKey, "--secret-access-key", k.srv.SecretKey)
	return err
}
func (k *kopiaOn) backup() (run, error) { return run{}, fmt.Errorf("%s only restores", k.name) }
func (k *kopiaOn) restore(dst string) (run, error) {
	if _, err := execRun(kopiaEnv(k.dir), kopiaBin, "cache", "set", "--content-cache-size-mb=0"); err != nil {
		return run{}, err
	}
	return execRun(kopiaEnv(k.dir), kopiaBin, "snapshot", "restore", lastSnapshot[k.owner.name], dst, "--no-progress")
}

func benchRestore() error {
	if err := prepare(); err != nil {
		return err
	}
	if err := resetTree(); err != nil {
		return err
	}
	if !skipFS {
		kfs := kopiaFS{dir: filepath.Join(work, "kopia-fs"), compression: "none"}
		mfs := &moverT{name: "mover-fs", location: "file://" + filepath.Join(work, "mover-fs"), compression: "auto"}
		if err := restorePairs("filesystem", []target{kfs, mfs}, []target{kfs, mfs}, mfs); err != nil {
			return err
		}
	}
	if weedBin == "" {
		return nil
	}
	weed := &freshWeed{dir: filepath.Join(work, "weed")}
	defer weed.stop()
	srv, err := weed.start()
	if err != nil {
		return err
	}
	ks3 := kopiaS3{srv: srv, compression: "none", dir: filepath.Join(work, "kopia-s3")}
	ms3 := &moverT{name: "mover-s3", s3: srv, compression: "auto"}
	on := &kopiaOn{name: "kopia-on-mvr", dir: filepath.Join(work, "kopia-on"), srv: srv, owner: ms3}
	return restorePairs("SeaweedFS", []target{ks3, ms3}, []target{ks3, on, ms3}, ms3)
}

// restorePairs backs up the tree once with each of writers (a new repository each), sets up
// the others, then runs reps rounds of every restorer, their order rotated each round, and prints
// each restorer's median and the median of each round's ratio against the mover.
func restorePairs(where string, writers, restorers []target, mover *moverT) error {
	fmt.Printf("\n== restore, %s: %d rounds  [%s]\n", where, reps, loadAvg())
	warm(treeDir)
	for _, t := range writers {
		if err := t.setup(); err != nil {
			return fmt.Errorf("%s setup: %w", t.label(), err)
		}
		r, err := t.backup()
		if err != nil {
			return fmt.Errorf("%s backup: %w", t.label(), err)
		}
		fmt.Printf("  %-12s backup  %7.2fs  cpu %6.2fs\n", t.label(), r.wall.Seconds(), r.cpu.Seconds())
	}
	for _, t := range restorers {
		if k, ok := t.(*kopiaOn); ok {
			if err := k.setup(); err != nil {
				return fmt.Errorf("%s setup: %w", t.label(), err)
			}
		}
	}
	runs := map[string][]run{}
	for rep := range reps {
		ts := append(append([]target(nil), restorers[rep%len(restorers):]...), restorers[:rep%len(restorers)]...)
		for _, t := range ts {
			dst := filepath.Join(work, "restore-"+t.label())
			_ = os.RemoveAll(dst)
			flush()
			r, err := t.restore(dst)
			if err != nil {
				return fmt.Errorf("%s restore: %w", t.label(), err)
			}
			if got, want := duBytes(dst), duBytes(treeDir); got != want {
				return fmt.Errorf("%s restored %d bytes; the tree has %d", t.label(), got, want)
			}
			_ = os.RemoveAll(dst)
			runs[t.label()] = append(runs[t.label()], r)
			fmt.Printf("  %-12s restore %7.2fs %6.0f MB/s  cpu %6.2fs  (run %d)  [%s]\n", t.label(), r.wall.Seconds(), mbps(r), r.cpu.Seconds(), rep+1, loadAvg())
		}
	}
	for _, t := range restorers {
		rs := runs[t.label()]
		fmt.Printf("  %-12s median restore %.2fs  cpu %.2fs\n", t.label(), medianRun(rs).wall.Seconds(), medianCPU(rs).Seconds())
	}
	for _, t := range restorers {
		if t.label() != mover.label() {
			fmt.Printf("%s: restore throughput mover/%s = %s (goal ≥ 1.0)  [%s]\n", where, t.label(), paired(runs[t.label()], runs[mover.label()]), loadAvg())
		}
	}
	return nil
}

func medianCPU(rs []run) (d time.Duration) {
	s := make([]time.Duration, len(rs))
	for i, r := range rs {
		s[i] = r.cpu
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[(len(s)-1)/2]
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func fmtFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(parts, "/")
}
