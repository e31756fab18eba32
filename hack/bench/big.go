package main

// The big-file suite (--suite big; the compress suite runs its SeaweedFS half): one file of
// --big-mib MiB of random bytes, first backups into new repositories, the targets rotated each
// round. "A single stream" is measured two ways: the mover itself with --parallel 1 (its 64 MiB
// parts uploaded one after the other: the same code, the same repository format, only the
// parallelism differs) and the kopia CLI with its defaults (Kopia splits only files above 2 GiB).
// On SeaweedFS the store's own CPU is printed beside each run: it shares the two cores.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// bigRun is one first backup of the big file and what the store spent meanwhile.
type bigRun struct {
	run
	store time.Duration
}

func benchBig() error {
	if err := prepare(); err != nil {
		return err
	}
	big := filepath.Join(work, fmt.Sprintf("big-%d", bigMiB))
	if err := generateBig(big, int64(bigMiB)<<20); err != nil {
		return fmt.Errorf("big file: %w", err)
	}
	defer os.RemoveAll(big)
	treeDir, treeBytes = big, duBytes(big)
	if !skipFS {
		fsTargets := func(*s3server.Server) []target {
			return []target{
				kopiaFS{dir: filepath.Join(work, "kopia-fs"), compression: "none"},
				&moverT{name: "mover-fs", location: "file://" + filepath.Join(work, "mover-fs"), compression: "auto"},
				&moverT{name: "mover-fs-1", location: "file://" + filepath.Join(work, "mover-fs-1"), compression: "auto", extraEnv: []string{"PVBACKUP_PARALLEL=1"}},
			}
		}
		if err := bigRounds("filesystem", nil, fsTargets, "kopia-fs", "mover-fs", "mover-fs-1"); err != nil {
			return err
		}
		// The limit where the store is not the bottleneck (on a busy machine SeaweedFS alone
		// may take the big file slower than the limit).
		fsLimited := &moverT{name: "mover-limit", location: "file://" + filepath.Join(work, "mover-limit"), compression: "none"}
		if err := measureLimit("filesystem", fsLimited); err != nil {
			return err
		}
		removeRepository(fsLimited)
	}
	if weedBin == "" {
		return nil
	}
	weed := &freshWeed{dir: filepath.Join(work, "weed")}
	defer weed.stop()
	if err := bigRounds("SeaweedFS", weed, bigS3Targets, "kopia-s3", "mover-auto", "mover-1"); err != nil {
		return err
	}
	return measureLimitS3(weed)
}

// bigS3Targets are the big file's targets on SeaweedFS: the CLI, the mover, the mover with one stream.
func bigS3Targets(srv *s3server.Server) []target {
	return []target{
		kopiaS3{srv: srv, compression: "none", dir: filepath.Join(work, "kopia-s3")},
		&moverT{name: "mover-auto", s3: srv, compression: "auto"},
		&moverT{name: "mover-1", s3: srv, compression: "auto", extraEnv: []string{"PVBACKUP_PARALLEL=1"}},
	}
}

// bigRounds runs reps rounds of a first backup of treeDir by each target (weed: a fresh
// SeaweedFS each round; nil: a filesystem), then prints the medians and the throughput ratios of
// the mover against its own single stream and against the CLI.
func bigRounds(where string, weed *freshWeed, targetsOn func(*s3server.Server) []target, cli, mover, single string) error {
	if reps <= 0 { // --reps 0: the upload limits alone
		return nil
	}
	fmt.Printf("\n== one %d MiB file, %s: %d rounds  [%s]\n", bigMiB, where, reps, loadAvg())
	runs := map[string][]bigRun{}
	for rep := range reps {
		n := len(targetsOn(nil))
		for i := range n {
			// Each backup into a new store (a fresh SeaweedFS, or the filesystem repository
			// removed after it): one 2 GiB repository on the disk at a time.
			var srv *s3server.Server
			if weed != nil {
				var err error
				if srv, err = weed.start(); err != nil {
					return err
				}
			}
			t := targetsOn(srv)[(rep+i)%n]
			if err := t.setup(); err != nil {
				return fmt.Errorf("%s setup: %w", t.label(), err)
			}
			flush()
			before := storeCPU(srv)
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s backup: %w", t.label(), err)
			}
			br := bigRun{run: r, store: storeCPU(srv) - before}
			runs[t.label()] = append(runs[t.label()], br)
			fmt.Printf("  %-11s first backup %7.2fs %6.0f MB/s  cpu %6.2fs  store cpu %6.2fs  (run %d)  [%s]\n",
				t.label(), r.wall.Seconds(), mbps(r), r.cpu.Seconds(), br.store.Seconds(), rep+1, loadAvg())
			removeRepository(t)
		}
	}
	if weed != nil {
		weed.stop()
	}
	for _, l := range []string{cli, mover, single} {
		var rs []run
		var st []float64
		for _, br := range runs[l] {
			rs = append(rs, br.run)
			st = append(st, br.store.Seconds())
		}
		fmt.Printf("  %-11s median first %.2fs  cpu %.2fs  store cpu %.2fs\n", l, medianRun(rs).wall.Seconds(), medianCPU(rs).Seconds(), medianFloat(st))
	}
	all := map[string][]run{}
	for l, brs := range runs {
		for _, br := range brs {
			all[l] = append(all[l], br.run)
		}
	}
	ratio := func(base string) string { return paired(all[base], all[mover]) }
	fmt.Printf("big file, %s: upload throughput mover (64 MiB parts in parallel) / mover --parallel 1 (one stream) = %s (goal ≥ 1.5)  [%s]\n", where, ratio(single), loadAvg())
	fmt.Printf("big file, %s: upload throughput mover / kopia CLI (one stream up to 2 GiB) = %s\n", where, ratio(cli))
	return nil
}

// removeRepository deletes a filesystem target's repository (a SeaweedFS one goes with its store).
func removeRepository(t target) {
	switch t := t.(type) {
	case kopiaFS:
		_ = os.RemoveAll(t.dir)
	case *moverT:
		if strings.HasPrefix(t.location, "file://") {
			_ = os.RemoveAll(strings.TrimPrefix(t.location, "file://"))
		}
	}
}

// measureLimitS3 measures the upload limit on a fresh SeaweedFS.
func measureLimitS3(weed *freshWeed) error {
	if uploadLimit == "" {
		return nil
	}
	srv, err := weed.start()
	if err != nil {
		return err
	}
	return measureLimit("SeaweedFS", &moverT{name: "mover-limit", s3: srv, compression: "none"})
}

// measureLimit backs the big file up once with --upload-limit into m's new repository and
// prints the throughput against the limit.
func measureLimit(where string, m *moverT) error {
	if uploadLimit == "" {
		return nil
	}
	m.extraEnv = append(m.extraEnv, "PVBACKUP_UPLOAD_LIMIT="+uploadLimit)
	if err := m.setup(); err != nil {
		return err
	}
	r, err := m.backup()
	if err != nil {
		return err
	}
	got := float64(lastUploaded[m.name]) / r.wall.Seconds()
	fmt.Printf("upload limit %s, %s: %.0f bytes in %.1fs = %.2f MiB/s (goal within 10%% of the limit; the open and the repository's own writes included)  [%s]\n",
		uploadLimit, where, float64(lastUploaded[m.name]), r.wall.Seconds(), got/(1<<20), loadAvg())
	return nil
}

// storeCPU is the user+system time SeaweedFS has used so far (0 without one, or when its
// process is not found): the process whose command line names srv's S3 port.
func storeCPU(srv *s3server.Server) time.Duration {
	if srv == nil {
		return 0
	}
	port := srv.Endpoint[strings.LastIndexByte(srv.Endpoint, ':')+1:]
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "-s3.port="+port+"\x00") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if err != nil {
			return 0
		}
		// Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+s) * time.Second / 100 // USER_HZ
	}
	return 0
}
