package main

// The files suite (`make bench-files`): on the same generated tree, backed up once by the mover
// into a file:// location that the plugin reads like any backup,
//   - `kubectl pvbackup cp` of the whole volume to local disk against `kopia snapshot restore`
//     of the very same snapshot (the kopia CLI connected to the mover's repository directory,
//     content cache off), both from the same warm page cache;
//   - an in-place (sync) restore of a copy of the tree where 1% of the files changed, against
//     the restore of a snapshot holding only that 1% into an empty directory plus a walk (lstat)
//     of the whole target: what an ideal sync must do at least.
// cp against kopia is judged on the median of the pairs' ratios; the other figures are the best of
// `reps` runs, the tools interleaved.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

const filesNamespace = "bench"

func benchFiles() error {
	ctx := context.Background()
	if err := resetTree(); err != nil {
		return err
	}
	warm(treeDir)
	locDir := filepath.Join(work, "files-location")
	_ = os.RemoveAll(locDir)
	loc := "file://" + locDir
	repoPW, snapID, err := filesBackup(ctx, loc, treeDir, "b1")
	if err != nil {
		return err
	}
	// The kopia CLI reads the mover's repository as a filesystem repository: gocloud's fileblob
	// keeps each blob as one file named by its ID; Kopia's layout, with no shards, names it
	// ID.f. A directory of such links is the same repository, the same files, to the CLI.
	repoDir, err := kopiaView(filepath.Join(locDir, "kopia", filesNamespace))
	if err != nil {
		return err
	}
	kdir := filepath.Join(work, "kopia-files")
	_ = os.RemoveAll(kdir)
	kenv := append(os.Environ(), "KOPIA_PASSWORD="+repoPW, "KOPIA_CONFIG_PATH="+filepath.Join(kdir, "config", "repository.config"),
		"KOPIA_LOG_DIR="+filepath.Join(kdir, "logs"), "KOPIA_CHECK_FOR_UPDATES=false")
	if _, err := execRun(kenv, kopiaBin, "repository", "connect", "filesystem", "--path", repoDir, "--cache-directory", filepath.Join(kdir, "cache")); err != nil {
		return err
	}
	if _, err := execRun(kenv, kopiaBin, "cache", "set", "--content-cache-size-mb=0"); err != nil {
		return err
	}
	plugEnv := append(os.Environ(), "PVBACKUP_PASSWORD="+password, "KUBECONFIG="+filepath.Join(work, "no-kubeconfig"))

	// What each pays before the first byte: the plugin unwraps the location key (Argon2id) and
	// opens the repository; the CLI opens the repository. `cat` of a small file and `kopia ls`.
	var cpOpen, kOpen run
	for range reps {
		r, err := execRun(plugEnv, moverBin, "cat", "b1", filesNamespace+"/data:/text/t001.txt", "--from", loc)
		if err != nil {
			return err
		}
		cpOpen = best(cpOpen, r)
		if r, err = execRun(kenv, kopiaBin, "ls", snapID); err != nil {
			return err
		}
		kOpen = best(kOpen, r)
	}
	// Each run writes into a directory of its own, all removed at the end: a tree deleted just
	// before a run made ext4 scan its recently deleted inodes on every create (perf: most of the
	// kernel time in recently_deleted), so each run's speed depended on what ran before it.
	// The two tools alternate which goes first. A first pair warms up and is not counted: the first
	// run of a sequence met a state no later run did (in four benches the second tool of the first
	// pair was ahead in three; cp was ahead in 17 of the other 20 pairs).
	out := filepath.Join(work, "files-out")
	_ = os.RemoveAll(out)
	defer os.RemoveAll(out)
	var cp, kr run
	var ratios []float64 // kopia/cp of each pair run back to back: less exposed to the disk's moods than the bests
	for rep := -1; rep < reps; rep++ {
		kopiaFirst := rep%2 != 0
		// timed runs one tool into a directory of its own and checks what it wrote.
		timed := func(label, dir string, env []string, bin string, args ...string) (run, error) {
			dst := filepath.Join(out, fmt.Sprint(dir, "-", rep))
			flush()
			r, err := execRun(env, bin, append(args, dst)...)
			if err == nil {
				err = sameSize(dst)
			}
			if err != nil {
				return r, fmt.Errorf("%s: %w", label, err)
			}
			which := fmt.Sprint("run ", rep+1)
			if rep < 0 {
				which = "warm-up, not counted"
			}
			fmt.Printf("  %-14s %6.2fs %6.0f MB/s  %4.0f MB RSS  CPU %5.2fs  (%s)\n", label, r.wall.Seconds(), mbps(r), r.rssMB, r.cpu.Seconds(), which)
			return r, nil
		}
		cpRun := func() (run, error) {
			return timed("cp", "cp", plugEnv, moverBin, "cp", "b1", filesNamespace+"/data", "--from", loc)
		}
		kopiaRun := func() (run, error) {
			return timed("kopia restore", "kopia", kenv, kopiaBin, "snapshot", "restore", "--no-progress", snapID)
		}
		first, second := cpRun, kopiaRun
		if kopiaFirst {
			first, second = kopiaRun, cpRun
		}
		r1, err := first()
		if err != nil {
			return err
		}
		r2, err := second()
		if err != nil {
			return err
		}
		rc, rk := r1, r2
		if kopiaFirst {
			rc, rk = r2, r1
		}
		if rep < 0 {
			continue
		}
		cp, kr = best(cp, rc), best(kr, rk)
		ratios = append(ratios, rk.wall.Seconds()/rc.wall.Seconds())
	}
	sync, part, walk, partBytes, err := benchSync(ctx, loc, repoPW, snapID)
	if err != nil {
		return err
	}
	fmt.Println()
	faster := 0
	for _, x := range ratios {
		if x >= 1 {
			faster++
		}
	}
	// The goal is judged pair by pair: the two runs of a pair meet the same page cache and disk,
	// while the best of either tool is whichever run met the luckiest state (on this VM, CPU
	// per run of one tool ranged 3.5–6.9 s within one bench).
	fmt.Printf("files: cp vs kopia snapshot restore of the same snapshot, %d pairs run back to back: median cp throughput/kopia = %.2f (goal ≥ 1.0), cp as fast or faster in %d of %d\n",
		len(ratios), median(ratios), faster, len(ratios))
	fmt.Printf("       best runs: cp %.2fs (%.0f MB/s), kopia %.2fs (%.0f MB/s): %.2f  peak RSS cp %.0f MB, kopia %.0f MB\n",
		cp.wall.Seconds(), mbps(cp), kr.wall.Seconds(), mbps(kr), kr.wall.Seconds()/cp.wall.Seconds(), cp.rssMB, kr.rssMB)
	fmt.Printf("       open alone: plugin cat of a small file %.2fs (%.0f MB RSS), kopia ls %.2fs (%.0f MB RSS); copying alone (best total - open): cp/kopia throughput = %.2f\n",
		cpOpen.wall.Seconds(), cpOpen.rssMB, kOpen.wall.Seconds(), kOpen.rssMB, (kr.wall-kOpen.wall).Seconds()/(cp.wall-cpOpen.wall).Seconds())
	ref := part.wall + walk
	fmt.Printf("in place, 1%% of files changed: mover restore --sync %.2fs vs restore of that 1%% (%.1f MB) into an empty directory %.2fs + walk of the target %.2fs = %.2fs: sync/reference = %.2f (goal ≤ 1.5)\n",
		sync.wall.Seconds(), float64(partBytes)/1e6, part.wall.Seconds(), walk.Seconds(), ref.Seconds(), sync.wall.Seconds()/ref.Seconds())
	return nil
}

// flush writes the page cache's dirty pages back before a timed run: each run writes 1 GiB, and
// without it the next tool's run paid for the previous one's writeback (the same tool measured
// 3.2 s and 5.7 s in one session).
func flush() { syscall.Sync() }

// median of xs (sorted here), the mean of the middle two for an even count.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func best(old, r run) run {
	if old.wall == 0 || r.wall < old.wall {
		old.wall = r.wall
	}
	old.rssMB = max(old.rssMB, r.rssMB)
	return old
}

func sameSize(dir string) error {
	if got, want := duBytes(dir), duBytes(treeDir); got != want {
		return fmt.Errorf("%s holds %d bytes; the tree has %d", dir, got, want)
	}
	return nil
}

// filesBackup backs src up with the mover as volume bench/data of backup name in loc, the way
// `create` does: the location's key made from the password, the namespace's repository opened
// with the key derived from it, and the manifest written. It returns the repository's password
// (for the kopia CLI) and the snapshot ID.
func filesBackup(ctx context.Context, loc, src, name string) (string, string, error) {
	l, err := store.Open(ctx, loc)
	if err != nil {
		return "", "", err
	}
	defer l.Close()
	kr, err := keyring.Create(ctx, l, password)
	if err != nil {
		return "", "", err
	}
	repoPW, err := kr.RepoPassword(filesNamespace)
	if err != nil {
		return "", "", err
	}
	env := append(os.Environ(), "PVBACKUP_PASSWORD="+repoPW, "PVBACKUP_LOCATION="+loc, "PVBACKUP_SOURCE_NAMESPACE="+filesNamespace, "PVBACKUP_RESULT=-", "PVBACKUP_COMPRESSION=none")
	_, out, err := execOut(env, moverBin, "mover", "backup", "--source", src, "--pvc", "data", "--backup", name)
	if err != nil {
		return "", "", err
	}
	res, err := lastResult(out)
	if err != nil {
		return "", "", err
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: name, Status: catalog.Completed, Namespaces: []string{filesNamespace},
		Volumes: []catalog.Volume{{Namespace: filesNamespace, PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID}}}
	if err := catalog.New(l).WriteManifest(ctx, m); err != nil {
		return "", "", err
	}
	return repoPW, res.SnapshotID, nil
}

// benchSync times the mover's sync restore of a target where 1% of the files changed, and the
// reference: the restore of only those files' backed-up versions into an empty directory, plus
// a walk that lstats every entry of the target.
func benchSync(ctx context.Context, loc, repoPW, snapID string) (sync, part run, walk time.Duration, partBytes int64, err error) {
	env := append(os.Environ(), "PVBACKUP_PASSWORD="+repoPW, "PVBACKUP_LOCATION="+loc, "PVBACKUP_SOURCE_NAMESPACE="+filesNamespace, "PVBACKUP_RESULT=-")
	target := filepath.Join(work, "files-sync")
	_ = os.RemoveAll(target)
	if _, err = execRun(env, moverBin, "mover", "restore", "--snapshot", snapID, "--target", target, "--sparse=false"); err != nil {
		return
	}
	// The 1% (23 of 2,304 files, as the mover suite's incremental) as backed up, in a snapshot of their own.
	changed := pickOnePercent(target)
	partDir := filepath.Join(work, "files-part")
	_ = os.RemoveAll(partDir)
	for _, rel := range changed {
		b, rerr := os.ReadFile(filepath.Join(treeDir, rel))
		if rerr != nil {
			return sync, part, walk, 0, rerr
		}
		partBytes += int64(len(b))
		if err = os.MkdirAll(filepath.Dir(filepath.Join(partDir, rel)), 0o755); err != nil {
			return
		}
		if err = os.WriteFile(filepath.Join(partDir, rel), b, 0o644); err != nil {
			return
		}
	}
	_, out, err := execOut(env, moverBin, "mover", "backup", "--source", partDir, "--pvc", "part", "--backup", "part")
	if err != nil {
		return
	}
	pres, err := lastResult(out)
	if err != nil {
		return
	}
	for rep := range reps {
		if err = rewrite(target, changed, rep); err != nil {
			return
		}
		warm(target)
		r, out, rerr := execOut(env, moverBin, "mover", "restore", "--snapshot", snapID, "--target", target, "--sync", "--sparse=false")
		if rerr != nil {
			return sync, part, walk, 0, rerr
		}
		if err = syncedAsBackedUp(out, target, changed); err != nil {
			return
		}
		sync = best(sync, r)
		fmt.Printf("  sync (1%% changed) %6.2fs               %4.0f MB RSS  (run %d)\n", r.wall.Seconds(), r.rssMB, rep+1)

		empty := filepath.Join(work, "files-part-restore")
		_ = os.RemoveAll(empty)
		r, err = execRun(env, moverBin, "mover", "restore", "--snapshot", pres.SnapshotID, "--target", empty, "--sparse=false")
		if err != nil {
			return
		}
		part = best(part, r)
		_ = os.RemoveAll(empty)
		start := time.Now()
		if err = lstatAll(target); err != nil {
			return
		}
		if w := time.Since(start); walk == 0 || w < walk {
			walk = w
		}
		fmt.Printf("  restore of the 1%% %6.2fs, walk %.2fs  (run %d)\n", r.wall.Seconds(), time.Since(start).Seconds(), rep+1)
	}
	return sync, part, walk, partBytes, nil
}

// pickOnePercent chooses 1% of the files of dir (every hundredth, in walk order).
func pickOnePercent(dir string) []string {
	var all []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(dir, p)
			all = append(all, rel)
		}
		return nil
	})
	var out []string
	for i := 50; i < len(all); i += 100 {
		out = append(out, all[i])
	}
	return out
}

// rewrite changes the files the way an application does: new content of the same size, a new time.
func rewrite(dir string, files []string, rep int) error {
	rng := rand.New(rand.NewChaCha8([32]byte{3, byte(rep)}))
	for _, rel := range files {
		p := filepath.Join(dir, rel)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		b := make([]byte, st.Size())
		fill(rng, b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// syncedAsBackedUp checks that the sync rewrote the changed files (and only about them) and that
// they hold the backed-up content again.
func syncedAsBackedUp(out []byte, target string, changed []string) error {
	var res struct {
		Files        int64 `json:"files"`
		SkippedFiles int64 `json:"skippedFiles"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var ev struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil || json.Unmarshal(ev.Result, &res) != nil {
		return fmt.Errorf("no result in the sync's output")
	}
	if res.Files != int64(len(changed)) {
		return fmt.Errorf("the sync rewrote %d files (%d kept); %d had changed", res.Files, res.SkippedFiles, len(changed))
	}
	for _, rel := range changed {
		got, err := os.ReadFile(filepath.Join(target, rel))
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(treeDir, rel))
		if err != nil {
			return err
		}
		if string(got) != string(want) {
			return fmt.Errorf("%s differs from the backup after the sync", rel)
		}
	}
	return sameSize(target)
}

func lstatAll(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		_, err = os.Lstat(p)
		return err
	})
}

// kopiaView makes a directory beside dir where each blob file of dir appears (symlinked) under
// Kopia's filesystem storage name, with no sharding.
func kopiaView(dir string) (string, error) {
	view := dir + "-kopia-cli"
	_ = os.RemoveAll(view)
	if err := os.MkdirAll(view, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(view, e.Name()+".f")); err != nil {
			return "", err
		}
	}
	return view, os.WriteFile(filepath.Join(view, ".shards"), []byte(`{"default":[],"maxNonShardedLength":0}`+"\n"), 0o644)
}
