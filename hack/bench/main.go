// Command bench measures the mover against the kopia CLI (same module version) on one generated
// ~1 GiB tree, to a filesystem repository and to SeaweedFS over S3, with restic beside for
// reference, and prints the ratios the project's goals are stated in. `make bench` runs it.
//
//	go run ./hack/bench --mover bin/kubectl-pvbackup --kopia .local/bin/kopia --weed .local/bin/weed --work .local/bench
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

type run struct {
	wall  time.Duration
	cpu   time.Duration // user + system of the tool (wait4 counts the wrapper's waited-for child)
	rssMB float64
}

// series is a target's figures: first backup, incremental, restore (the best or the median of
// its runs), and all the runs in round order (the compress suite's per-round ratios).
type series struct {
	first, incr, restore run
	all                  [3][]run
}

var (
	moverBin, kopiaBin, resticBin, weedBin, work string
	baselineBin                                  string
	skipFS, verifyCmp, skipRestore               bool
	incrReps, verifyParallel, firstReps          int
	treeDir                                      string
	treeBytes                                    int64
	reps                                         int
)

const password = "bench-password-not-secret"

func main() {
	if len(os.Args) > 2 && os.Args[1] == "rss-exec" {
		os.Exit(rssExec(os.Args[2:]))
	}
	flag.StringVar(&moverBin, "mover", "bin/kubectl-pvbackup", "kubectl-pvbackup binary")
	flag.StringVar(&kopiaBin, "kopia", ".local/bin/kopia", "kopia CLI (hack/tools.sh kopia)")
	flag.StringVar(&resticBin, "restic", "restic", "restic (apt-get install restic); empty to skip")
	flag.StringVar(&weedBin, "weed", ".local/bin/weed", "SeaweedFS (hack/tools.sh seaweedfs); empty to skip S3")
	flag.StringVar(&work, "work", ".local/bench", "work directory (the tree is kept between runs)")
	compression := flag.String("compression", "none", "compression policy for both kopia and the mover")
	flag.IntVar(&reps, "reps", 2, "runs of each measurement; the best is reported")
	suite := flag.String("suite", "mover", "mover: backup and restore against kopia and restic, then the small-files tree; files: cp and in-place sync (files.go); small: the small-files tree alone (small.go); compress: issue 29's measures on SeaweedFS (compress.go); block: a device image, mover --block vs kopia --stdin-file (block.go); restore: the random tree's restore, mover vs CLI, interleaved rounds (restorecmp.go); big: one big file, mover vs mover --parallel 1 vs CLI, filesystem and SeaweedFS, then the upload limit (big.go)")
	flag.IntVar(&compressMiB, "compress-mib", 1024, "compress suite: MiB of the compressible tree (0 leaves it out)")
	flag.IntVar(&blockMiB, "block-mib", 2048, "block suite: MiB of the device image")
	flag.IntVar(&bigMiB, "big-mib", 2048, "compress suite: MiB of the one big file (0 leaves it out)")
	flag.StringVar(&uploadLimit, "upload-limit", "20MiB/s", "compress suite: the limit measured on the big file (empty leaves it out)")
	flag.IntVar(&smallFiles, "small-files", 50000, "files of the small-files tree (0 leaves it out)")
	flag.StringVar(&smallTarget, "small-target", "", "directory the small-files restores write into (default: the work directory; /dev/shm: memory)")
	flag.StringVar(&baselineBin, "baseline", "", "another kubectl-pvbackup binary (e.g. the main branch's) measured on S3 in the same run, for before/after figures")
	flag.BoolVar(&skipFS, "skip-fs", false, "leave out the filesystem targets and restic (quicker)")
	flag.BoolVar(&skipRestore, "skip-restore", false, "leave out the restores")
	flag.IntVar(&verifyParallel, "verify-parallel", 0, "also measure the plugin's verify with this many files read in parallel")
	flag.IntVar(&firstReps, "first-reps", 0, "runs of the first backup (0 = --reps)")
	flag.IntVar(&incrReps, "incr-reps", 0, "runs of the incremental backup (0 = --reps): small times need more")
	flag.BoolVar(&verifyCmp, "verify", true, "compare verify --read-data 100 with kopia snapshot verify --verify-files-percent=100 on the mover's S3 repository")
	flag.Parse()
	do := func() error { return bench(*compression) }
	switch *suite {
	case "files":
		do = func() error {
			if err := prepare(); err != nil {
				return err
			}
			return benchFiles()
		}
	case "small":
		do = smallAlone
	case "compress":
		do = benchCompress
	case "block":
		do = benchBlock
	case "restore":
		do = benchRestore
	case "big":
		do = benchBig
	}
	if err := do(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// prepare makes the paths absolute and generates the tree (kept between runs).
func prepare() error {
	var err error
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	for _, p := range []*string{&moverBin, &kopiaBin, &weedBin, &baselineBin} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return err
			}
			if _, err := os.Stat(*p); err != nil {
				return fmt.Errorf("%w (run hack/tools.sh kopia / seaweedfs and make build)", err)
			}
		}
	}
	treeDir = filepath.Join(work, "tree")
	if err := generate(treeDir); err != nil {
		return fmt.Errorf("generate tree: %w", err)
	}
	treeBytes = duBytes(treeDir)
	fmt.Printf("tree: %s, %.0f MB in %d files (%d CPUs)\n", treeDir, float64(treeBytes)/1e6, countFiles(treeDir), numCPU())
	return nil
}

func bench(compression string) error {
	if err := prepare(); err != nil {
		return err
	}
	fmt.Printf("compression %s\n", compression)
	var err error

	results := map[string]*series{}
	// Filesystem targets.
	if err := resetTree(); err != nil {
		return err
	}
	kfs := kopiaFS{dir: filepath.Join(work, "kopia-fs"), compression: compression}
	mfs := &moverT{name: "mover-fs", location: "file://" + filepath.Join(work, "mover-fs"), compression: compression}
	targets := []target{kfs, mfs}
	if skipFS {
		targets = nil
	}
	var stopWeed func()
	var srv *s3server.Server
	moverS3 := &moverT{name: "mover-s3", compression: compression}
	if weedBin != "" {
		wdir := filepath.Join(work, "weed")
		_ = os.RemoveAll(wdir)
		if err := os.MkdirAll(wdir, 0o755); err != nil {
			return err
		}
		var stop func()
		srv, stop, err = s3server.StartSeaweedFS(weedBin, wdir)
		if err != nil {
			return err
		}
		stopWeed = stop
		defer stop()
		os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		os.Setenv("AWS_REGION", "us-east-1")
		moverS3.s3 = srv
		targets = append(targets, kopiaS3{srv: srv, compression: compression, dir: filepath.Join(work, "kopia-s3")}, moverS3)
		if baselineBin != "" {
			targets = append(targets, &moverT{name: "base-s3", bin: baselineBin, s3: srv, compression: compression})
		}
	}
	if resticBin != "" && !skipFS {
		targets = append(targets, resticT{dir: filepath.Join(work, "restic-fs")})
	}
	for _, t := range targets {
		results[t.label()] = &series{}
	}
	// Every figure is the best of `reps` runs, the tools interleaved: other work on the machine
	// slows whichever tool it overlaps, and the best run is the one it overlapped least.
	better := func(old, r run) run {
		if old.wall == 0 || r.wall < old.wall {
			old.wall = r.wall
		}
		old.rssMB = max(old.rssMB, r.rssMB) // peak memory: the worst run
		return old
	}
	warm(treeDir)
	if firstReps <= 0 {
		firstReps = reps
	}
	for rep := range firstReps {
		for _, t := range targets {
			if err := t.setup(); err != nil {
				return fmt.Errorf("%s setup: %w", t.label(), err)
			}
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s first backup: %w", t.label(), err)
			}
			results[t.label()].first = better(results[t.label()].first, r)
			fmt.Printf("  %-9s first backup   %6.2fs %6.0f MB/s  %4.0f MB RSS  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.rssMB, rep+1)
		}
	}
	if incrReps <= 0 {
		incrReps = reps
	}
	for rep := range incrReps {
		if err := change(treeDir, rep); err != nil {
			return err
		}
		warm(treeDir)
		for _, t := range targets {
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s incremental backup: %w", t.label(), err)
			}
			results[t.label()].incr = better(results[t.label()].incr, r)
			fmt.Printf("  %-9s incremental    %6.2fs                %4.0f MB RSS  (run %d)\n", t.label(), r.wall.Seconds(), r.rssMB, rep+1)
		}
	}
	for rep := range reps {
		if skipRestore {
			break
		}
		for _, t := range targets {
			dst := filepath.Join(work, "restore-"+t.label())
			_ = os.RemoveAll(dst)
			r, err := t.restore(dst)
			if err != nil {
				return fmt.Errorf("%s restore: %w", t.label(), err)
			}
			if got, want := duBytes(dst), duBytes(treeDir); got != want {
				return fmt.Errorf("%s restored %d bytes; the tree has %d", t.label(), got, want)
			}
			_ = os.RemoveAll(dst)
			results[t.label()].restore = better(results[t.label()].restore, r)
			fmt.Printf("  %-9s restore        %6.2fs %6.0f MB/s  %4.0f MB RSS  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.rssMB, rep+1)
		}
	}
	var verifyLine string
	if srv != nil && verifyCmp {
		if verifyLine, err = compareVerify(srv, moverS3); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	if smallFiles > 0 {
		if err := benchSmall(srv); err != nil {
			return err
		}
	}
	if stopWeed != nil {
		stopWeed()
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "tool → target\tfirst s\tMB/s\tincr s\trestore s\tMB/s\tpeak RSS MB (first/incr/restore)")
	for _, t := range targets {
		s := results[t.label()]
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f / %.0f / %.0f\n", t.label(), s.first.wall.Seconds(), mbps(s.first), s.incr.wall.Seconds(),
			s.restore.wall.Seconds(), mbps(s.restore), s.first.rssMB, s.incr.rssMB, s.restore.rssMB)
	}
	tw.Flush()
	fmt.Println()
	ratios := func(name, m, k string, rssGoal float64) {
		ms, ks := results[m], results[k]
		if ms == nil || ks == nil {
			return
		}
		fmt.Printf("%s: first backup throughput mover/kopia = %.2f (goal ≥ 0.95)  incremental time mover/kopia = %.2f (goal ≤ 1.2)  restore throughput mover/kopia = %.2f (goal ≥ 0.95)  peak RSS first backup mover/kopia = %.2f (goal ≤ %.1f)\n",
			name, ks.first.wall.Seconds()/ms.first.wall.Seconds(), ms.incr.wall.Seconds()/ks.incr.wall.Seconds(),
			ks.restore.wall.Seconds()/ms.restore.wall.Seconds(), ms.first.rssMB/ks.first.rssMB, rssGoal)
	}
	ratios("filesystem", "mover-fs", "kopia-fs", 1.2)
	ratios("s3 (SeaweedFS)", "mover-s3", "kopia-s3", 1.5)
	ratios("s3 (SeaweedFS), baseline binary", "base-s3", "kopia-s3", 1.5)
	if verifyLine != "" {
		fmt.Println(verifyLine)
	}
	return nil
}

type target interface {
	label() string
	setup() error
	backup() (run, error)
	restore(dst string) (run, error)
}

// ---- kopia CLI

type kopiaFS struct{ dir, compression string }

func kopiaEnv(dir string) []string {
	return append(os.Environ(), "KOPIA_PASSWORD="+password, "KOPIA_CONFIG_PATH="+filepath.Join(dir, "config", "repository.config"),
		"KOPIA_LOG_DIR="+filepath.Join(dir, "logs"), "KOPIA_CHECK_FOR_UPDATES=false")
}

func (k kopiaFS) label() string { return "kopia-fs" }
func (k kopiaFS) setup() error {
	_ = os.RemoveAll(k.dir)
	if _, err := execRun(kopiaEnv(k.dir), kopiaBin, "repository", "create", "filesystem", "--path", filepath.Join(k.dir, "repo"), "--cache-directory", filepath.Join(k.dir, "cache")); err != nil {
		return err
	}
	return kopiaPolicy(k.dir, k.compression)
}
func (k kopiaFS) backup() (run, error) { return kopiaBackup(k.dir) }
func (k kopiaFS) restore(dst string) (run, error) {
	return kopiaRestore(k.dir, dst)
}

type kopiaS3 struct {
	srv              *s3server.Server
	compression, dir string
}

func (k kopiaS3) label() string { return "kopia-s3" }
func (k kopiaS3) setup() error {
	_ = os.RemoveAll(k.dir)
	if _, err := execRun(kopiaEnv(k.dir), kopiaBin, "repository", "create", "s3", "--cache-directory", filepath.Join(k.dir, "cache"), "--bucket", k.srv.Bucket, "--prefix", fmt.Sprintf("kopia-cli-%d/", nextSetup()),
		"--endpoint", strings.TrimPrefix(k.srv.Endpoint, "http://"), "--disable-tls", "--region", "us-east-1",
		"--access-key", k.srv.AccessKey, "--secret-access-key", k.srv.SecretKey); err != nil {
		return err
	}
	return kopiaPolicy(k.dir, k.compression)
}
func (k kopiaS3) backup() (run, error)            { return kopiaBackup(k.dir) }
func (k kopiaS3) restore(dst string) (run, error) { return kopiaRestore(k.dir, dst) }

func kopiaPolicy(dir, compression string) error {
	_, err := execRun(kopiaEnv(dir), kopiaBin, "policy", "set", "--global", "--compression", compression)
	return err
}

func kopiaBackup(dir string) (run, error) {
	return execRun(kopiaEnv(dir), kopiaBin, "snapshot", "create", treeDir, "--no-progress")
}

func kopiaRestore(dir, dst string) (run, error) {
	// The CLI's fastest restore setting: no content cache (what the mover always uses).
	if _, err := execRun(kopiaEnv(dir), kopiaBin, "cache", "set", "--content-cache-size-mb=0"); err != nil {
		return run{}, err
	}
	cmd := exec.Command(kopiaBin, "snapshot", "list", treeDir, "--json")
	cmd.Env = kopiaEnv(dir)
	out, err := cmd.Output()
	if err != nil {
		return run{}, fmt.Errorf("kopia snapshot list: %w", err)
	}
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &snaps); err != nil || len(snaps) == 0 {
		return run{}, fmt.Errorf("kopia snapshot list: %v (%d snapshots)", err, len(snaps))
	}
	return execRun(kopiaEnv(dir), kopiaBin, "snapshot", "restore", snaps[len(snaps)-1].ID, dst, "--no-progress")
}

// ---- the mover

type moverT struct {
	name, location, compression string
	extraEnv                    []string         // e.g. PVBACKUP_UPLOAD_LIMIT
	bin                         string           // "" = moverBin
	s3                          *s3server.Server // a fresh prefix per setup when set
}

var setups int

func nextSetup() int { setups++; return setups }

func (m *moverT) label() string { return m.name }
func (m *moverT) env() []string {
	env := append(os.Environ(), "PVBACKUP_PASSWORD="+password, "PVBACKUP_LOCATION="+m.location, "PVBACKUP_SOURCE_NAMESPACE=bench",
		"PVBACKUP_RESULT=-", "PVBACKUP_COMPRESSION="+m.compression)
	return append(env, m.extraEnv...)
}
func (m *moverT) setup() error {
	if m.s3 != nil {
		m.location = m.s3.URL(fmt.Sprintf("mover-%d", nextSetup()))
	}
	if strings.HasPrefix(m.location, "file://") {
		_ = os.RemoveAll(strings.TrimPrefix(m.location, "file://"))
	}
	// Create the repository outside the measurement, as `kopia repository create` is for the CLI.
	empty := filepath.Join(work, "empty")
	_ = os.MkdirAll(empty, 0o755)
	_, err := execRun(m.env(), m.binary(), "mover", "backup", "--source", empty, "--pvc", "warmup")
	return err
}

var (
	lastSnapshot = map[string]string{}
	lastUploaded = map[string]int64{} // bytes the mover's last backup wrote to the bucket
)

func (m *moverT) backup() (run, error) {
	r, out, err := execOut(m.env(), m.binary(), "mover", "backup", "--source", treeDir, "--pvc", "data", "--backup", "bench")
	if err != nil {
		return r, err
	}
	res, err := lastResult(out)
	if err != nil {
		return r, err
	}
	lastSnapshot[m.name] = res.SnapshotID
	lastUploaded[m.name] = res.UploadedBytes
	return r, nil
}

func (m *moverT) restore(dst string) (run, error) {
	return execRun(m.env(), m.binary(), "mover", "restore", "--snapshot", lastSnapshot[m.name], "--target", dst, "--sparse=false")
}

func (m *moverT) binary() string {
	if m.bin != "" {
		return m.bin
	}
	return moverBin
}

// moverResult is what the bench reads of a mover's result.
type moverResult struct {
	SnapshotID    string
	UploadedBytes int64
}

func lastResult(out []byte) (*moverResult, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var last []byte
	for sc.Scan() {
		last = append(last[:0], sc.Bytes()...)
	}
	var ev struct {
		Result *moverResult `json:"result"`
	}
	if err := json.Unmarshal(last, &ev); err != nil || ev.Result == nil {
		return nil, fmt.Errorf("no result in mover output %q", last)
	}
	return ev.Result, nil
}

// ---- restic

type resticT struct{ dir string }

func (r resticT) label() string { return "restic-fs" }
func (r resticT) env() []string {
	return append(os.Environ(), "RESTIC_PASSWORD="+password, "RESTIC_REPOSITORY="+filepath.Join(r.dir, "repo"), "RESTIC_CACHE_DIR="+filepath.Join(r.dir, "cache"))
}
func (r resticT) setup() error {
	_ = os.RemoveAll(r.dir)
	_, err := execRun(r.env(), resticBin, "init")
	return err
}
func (r resticT) backup() (run, error) {
	return execRun(r.env(), resticBin, "backup", "--quiet", treeDir)
}
func (r resticT) restore(dst string) (run, error) {
	run, err := execRun(r.env(), resticBin, "restore", "latest", "--target", dst)
	if err != nil {
		return run, err
	}
	// restic restores the absolute path under the target: move it up so sizes compare.
	inner := filepath.Join(dst, treeDir)
	tmp := dst + ".tmp"
	if err := os.Rename(inner, tmp); err != nil {
		return run, err
	}
	_ = os.RemoveAll(dst)
	return run, os.Rename(tmp, dst)
}

// ---- helpers

// benchStdin, when set, is the standard input of the next tool run (execIn).
var benchStdin io.Reader

func execRun(env []string, name string, args ...string) (run, error) {
	r, _, err := execOut(env, name, args...)
	return r, err
}

func execOut(env []string, name string, args ...string) (run, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// Run through a small wrapper process: a child's peak RSS counts the memory of the process
	// that forked it, and this one holds more than the tools do.
	self, err := os.Executable()
	if err != nil {
		return run{}, nil, err
	}
	rssFile := filepath.Join(work, ".rss")
	_ = os.Remove(rssFile)
	cmd := exec.CommandContext(ctx, self, append([]string{"rss-exec", name}, args...)...)
	cmd.Env = append(env, "BENCH_RSS_OUT="+rssFile)
	if benchStdin != nil {
		cmd.Stdin = benchStdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r := run{wall: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		r.cpu = ps.UserTime() + ps.SystemTime()
	}
	if b, rerr := os.ReadFile(rssFile); rerr == nil {
		var kb float64
		fmt.Sscan(string(b), &kb)
		r.rssMB = kb / 1024
	}
	if err != nil {
		return r, stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, tailOf(stdout.String()), tailOf(stderr.String()))
	}
	return r, stdout.Bytes(), nil
}

// rssExec runs args and writes the child's peak RSS (KiB) to $BENCH_RSS_OUT.
func rssExec(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			_ = os.WriteFile(os.Getenv("BENCH_RSS_OUT"), []byte(fmt.Sprint(ru.Maxrss)), 0o644)
		}
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func tailOf(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func mbps(r run) float64 { return float64(treeBytes) / 1e6 / r.wall.Seconds() }

// generate writes the tree once (deterministic): 2,000 small 1–64 KiB files, 200 medium 1–4 MiB,
// 4 × 100 MiB, 100 compressible text files.
func generate(dir string) error {
	stamp := filepath.Join(dir, ".complete")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	write := func(path string, size int) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		b := make([]byte, size)
		fill(rng, b)
		return os.WriteFile(path, b, 0o644)
	}
	for i := range 2000 {
		if err := write(filepath.Join(dir, "small", fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.bin", i)), 1024+rng.IntN(63*1024)); err != nil {
			return err
		}
	}
	for i := range 200 {
		if err := write(filepath.Join(dir, "medium", fmt.Sprintf("d%d", i%10), fmt.Sprintf("m%03d.bin", i)), 1<<20+rng.IntN(3<<20)); err != nil {
			return err
		}
	}
	for i := range 4 {
		if err := write(filepath.Join(dir, "large", fmt.Sprintf("l%d.bin", i)), 100<<20); err != nil {
			return err
		}
	}
	words := strings.Fields("the quick brown fox jumps over the lazy dog kubernetes volume snapshot backup restore kopia bucket object storage namespace claim")
	for i := range 100 {
		var sb strings.Builder
		for sb.Len() < 64<<10+rng.IntN(128<<10) {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				sb.WriteString(".\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		p := filepath.Join(dir, "text", fmt.Sprintf("t%03d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(stamp, nil, 0o644)
}

func fill(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// change rewrites 1% of the files (23 of 2,304): 20 small, 2 medium, 1 text; undone by resetTree.
func change(dir string, rep int) error {
	rng := rand.New(rand.NewChaCha8([32]byte{2, byte(rep)}))
	var files []string
	for i := 0; i < 20; i++ {
		j := (i*97 + rep*13) % 2000
		files = append(files, filepath.Join(dir, "small", fmt.Sprintf("d%02d", j%40), fmt.Sprintf("f%04d.bin", j)))
	}
	m1, m2, tx := 13+rep*20, 117+rep*20, 42+rep
	files = append(files, filepath.Join(dir, "medium", fmt.Sprintf("d%d", m1%10), fmt.Sprintf("m%03d.bin", m1)),
		filepath.Join(dir, "medium", fmt.Sprintf("d%d", m2%10), fmt.Sprintf("m%03d.bin", m2)), filepath.Join(dir, "text", fmt.Sprintf("t%03d.txt", tx)))
	var changed []string
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue // the naming pattern above does not hit every index: skip misses
		}
		b := make([]byte, st.Size())
		fill(rng, b)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return err
		}
		changed = append(changed, f)
	}
	if len(changed) == 0 {
		return errors.New("change: no files matched")
	}
	fmt.Printf("changed %d files\n", len(changed))
	return os.WriteFile(filepath.Join(dir, ".changed"), []byte(strings.Join(changed, "\n")), 0o644) // the next run regenerates
}

// resetTree regenerates the tree when a previous run changed it.
func resetTree() error {
	if _, err := os.Stat(filepath.Join(treeDir, ".changed")); err == nil {
		_ = os.Remove(filepath.Join(treeDir, ".complete"))
		if err := generate(treeDir); err != nil {
			return err
		}
		treeBytes = duBytes(treeDir)
	}
	return nil
}

func duBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasPrefix(info.Name(), ".c") {
			n += info.Size()
		}
		return nil
	})
	return n
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// warm reads the tree so every tool starts from the same (warm) page cache.
func warm(dir string) {
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if f, err := os.Open(p); err == nil {
				_, _ = io.Copy(io.Discard, f)
				f.Close()
			}
		}
		return nil
	})
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	var n int
	fmt.Sscan(string(out), &n)
	return n
}
