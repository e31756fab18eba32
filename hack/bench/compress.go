package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The compress suite (issue 29), all on SeaweedFS in one run: the kopia CLI with its defaults
// against the mover with its default compression (auto) and with none, on the random tree and on
// a compressible one (JSON logs, text, a SQLite database); one big file; an upload limit.
var (
	compressMiB, bigMiB int
	uploadLimit         string
)

func benchCompress() error {
	if err := prepare(); err != nil {
		return err
	}
	if err := resetTree(); err != nil {
		return err
	}
	randomTree := treeDir
	trees := []struct{ name, dir string }{{"random", randomTree}}
	if compressMiB > 0 {
		ctree := filepath.Join(work, fmt.Sprintf("ctree-%d", compressMiB))
		if err := generateCompressible(ctree, int64(compressMiB)<<20); err != nil {
			return fmt.Errorf("compressible tree: %w", err)
		}
		trees = append(trees, struct{ name, dir string }{"compressible", ctree})
	}
	weed := &freshWeed{dir: filepath.Join(work, "weed")}
	defer weed.stop()
	fmt.Printf("(every figure: the median of %d runs, the tools interleaved, their order rotated each run; a fresh SeaweedFS each run)\n", reps)

	for _, tree := range trees {
		treeDir, treeBytes = tree.dir, duBytes(tree.dir)
		fmt.Printf("\n== %s tree: %.0f MB in %d files  [%s]\n", tree.name, float64(treeBytes)/1e6, countFiles(treeDir), loadAvg())
		targets := func(srv *s3server.Server) []target {
			return []target{
				kopiaS3{srv: srv, compression: "none", dir: filepath.Join(work, "kopia-s3")}, // the CLI's default: none
				&moverT{name: "mover-auto", s3: srv, compression: "auto"},
				&moverT{name: "mover-none", s3: srv, compression: "none"},
			}
		}
		incremental := tree.name == "random" // change() rewrites files of the random tree
		res, err := measureTargets(weed, targets, true, incremental)
		if err != nil {
			return err
		}
		k, a, n := res["kopia-s3"], res["mover-auto"], res["mover-none"]
		fmt.Printf("%s: first backup throughput mover/kopia = %s (goal ≥ 1.1)  restore throughput mover/kopia = %s (goal ≥ 1.0)\n",
			tree.name, paired(k.all[0], a.all[0]), paired(k.all[2], a.all[2]))
		if incremental {
			fmt.Printf("%s: incremental time mover/kopia = %s (goal ≤ 1.0)\n", tree.name, paired(a.all[1], k.all[1]))
		}
		fmt.Printf("%s: bucket bytes auto/tree = %.3f, none/tree = %.3f  first backup time auto/none = %.2f (goal: compressible ≤ 1.1, random ≤ 1.03)  [%s]\n",
			tree.name, float64(firstUploaded["mover-auto"])/float64(treeBytes), float64(firstUploaded["mover-none"])/float64(treeBytes),
			medianFloat(roundRatios(a.all[0], n.all[0])), loadAvg())
	}
	if bigMiB <= 0 {
		return nil
	}
	big := filepath.Join(work, fmt.Sprintf("big-%d", bigMiB))
	if err := generateBig(big, int64(bigMiB)<<20); err != nil {
		return fmt.Errorf("big file: %w", err)
	}
	defer os.RemoveAll(big) // 2 GiB: regenerated in seconds
	treeDir, treeBytes = big, duBytes(big)
	if err := bigRounds("SeaweedFS", weed, bigS3Targets, "kopia-s3", "mover-auto", "mover-1"); err != nil {
		return err
	}
	return measureLimitS3(weed)
}

// paired is the median of the rounds' ratios num/den of wall times, with each round's: the two
// runs of a round met the same machine, while two medians may come from rounds of different load
// (the random tree's restore: medians 9.11 s / 10.51 s = 0.87 of rounds whose ratios were 1.14,
// 1.34 and 0.87). The ratio of the medians follows for reference.
func paired(num, den []run) string {
	return fmt.Sprintf("%.2f (per round %s; medians %.2f)", medianFloat(roundRatios(num, den)), fmtFloats(roundRatios(num, den)),
		medianRun(num).wall.Seconds()/medianRun(den).wall.Seconds())
}

// roundRatios are num[i]/den[i] of wall times, for the rounds both ran.
func roundRatios(num, den []run) []float64 {
	v := make([]float64, 0, len(num))
	for i := range min(len(num), len(den)) {
		v = append(v, num[i].wall.Seconds()/den[i].wall.Seconds())
	}
	return v
}

// firstUploaded is what each mover target's last first backup wrote to the bucket (lastUploaded
// is its last backup's, an incremental one after a round with incrementals).
var firstUploaded = map[string]int64{}

// freshWeed is a SeaweedFS started anew, on an empty data directory, for each run: a run's
// repositories (gigabytes) are gone before the next, and no run is slowed by the last one's data.
type freshWeed struct {
	dir   string
	close func()
}

func (w *freshWeed) start() (*s3server.Server, error) {
	w.stop()
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	srv, stop, err := s3server.StartSeaweedFS(weedBin, w.dir)
	if err != nil {
		return nil, err
	}
	w.close = stop
	os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	os.Setenv("AWS_REGION", "us-east-1")
	return srv, nil
}

func (w *freshWeed) stop() {
	if w.close != nil {
		w.close()
		w.close = nil
	}
	_ = os.RemoveAll(w.dir)
}

// loadAvg is the machine's load average (1, 5, 15 minutes), for the figures' context.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}

// measureTargets runs `reps` rounds on a fresh SeaweedFS each: every target's first backup into a
// new repository, with incremental a backup after change() of 1% of the tree, and with restores a
// restore of its last snapshot; the targets take turns, their order rotated each round. Each
// figure is the median of its rounds.
func measureTargets(weed *freshWeed, targetsOn func(*s3server.Server) []target, restores, incremental bool) (map[string]*series, error) {
	runs := map[string]*[3][]run{}
	var labels []string
	for rep := range reps {
		srv, err := weed.start()
		if err != nil {
			return nil, err
		}
		ts := targetsOn(srv)
		ts = append(ts[rep%len(ts):], ts[:rep%len(ts)]...)
		if rep == 0 {
			for _, t := range ts {
				labels = append(labels, t.label())
				runs[t.label()] = &[3][]run{}
			}
		}
		warm(treeDir)
		if err := round(ts, rep, runs, restores, incremental); err != nil {
			return nil, err
		}
	}
	weed.stop()
	res := map[string]*series{}
	for _, l := range labels {
		r := runs[l]
		res[l] = &series{first: medianRun(r[0]), incr: medianRun(r[1]), restore: medianRun(r[2]), all: *r}
		fmt.Printf("  %-11s median: first %.2fs  incremental %.2fs  restore %.2fs\n", l, res[l].first.wall.Seconds(), res[l].incr.wall.Seconds(), res[l].restore.wall.Seconds())
	}
	return res, nil
}

// round is one round of measureTargets: runs[label] gets a first backup, an incremental and a
// restore (those asked for).
func round(ts []target, rep int, runs map[string]*[3][]run, restores, incremental bool) error {
	for _, t := range ts {
		if err := t.setup(); err != nil {
			return fmt.Errorf("%s setup: %w", t.label(), err)
		}
		flush()
		r, err := t.backup()
		if err != nil {
			return fmt.Errorf("%s first backup: %w", t.label(), err)
		}
		runs[t.label()][0] = append(runs[t.label()][0], r)
		firstUploaded[t.label()] = lastUploaded[t.label()]
		fmt.Printf("  %-11s first backup %7.2fs %6.0f MB/s  cpu %6.2fs  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.cpu.Seconds(), rep+1)
	}
	if incremental {
		if err := change(treeDir, rep); err != nil {
			return err
		}
		warm(treeDir)
		for _, t := range ts {
			flush()
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s incremental backup: %w", t.label(), err)
			}
			runs[t.label()][1] = append(runs[t.label()][1], r)
			fmt.Printf("  %-11s incremental  %7.2fs              cpu %6.2fs  (run %d)\n", t.label(), r.wall.Seconds(), r.cpu.Seconds(), rep+1)
		}
	}
	if !restores {
		return nil
	}
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
		runs[t.label()][2] = append(runs[t.label()][2], r)
		fmt.Printf("  %-11s restore      %7.2fs %6.0f MB/s  cpu %6.2fs  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.cpu.Seconds(), rep+1)
	}
	return nil
}

// medianRun is the run of median wall time (the lower middle of an even count); zero for none.
func medianRun(rs []run) run {
	if len(rs) == 0 {
		return run{}
	}
	s := append([]run(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].wall < s[j].wall })
	return s[(len(s)-1)/2]
}

// generateCompressible writes about size bytes: 60% JSON log files (1-16 MiB), 20% plain text,
// 20% one SQLite database of orders (the sqlite3 CLI; Debian's package). Kept between runs.
func generateCompressible(dir string, size int64) error {
	stamp := filepath.Join(dir, ".complete")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	paths := []string{"/api/orders", "/api/cart", "/healthz", "/api/users/me", "/static/app.js", "/api/search"}
	words := strings.Fields("the request was served from the cache after the upstream answered slowly while the pool of connections was busy and the client retried with a new token")
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(path string, n int64, line func(*strings.Builder)) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		var sb strings.Builder
		for int64(sb.Len()) < n {
			line(&sb)
		}
		return os.WriteFile(path, []byte(sb.String()[:n]), 0o644)
	}
	logLine := func(sb *strings.Builder) {
		t = t.Add(time.Duration(rng.IntN(900)) * time.Millisecond)
		fmt.Fprintf(sb, `{"ts":%q,"level":%q,"path":%q,"status":%d,"user":%d,"latency_ms":%d,"trace":"%016x","msg":"%s %s"}`+"\n",
			t.Format(time.RFC3339Nano), levels[rng.IntN(len(levels))], paths[rng.IntN(len(paths))], 200+rng.IntN(4)*100,
			rng.IntN(5000), rng.IntN(2000), rng.Uint64(), words[rng.IntN(len(words))], words[rng.IntN(len(words))])
	}
	textLine := func(sb *strings.Builder) {
		for range 8 + rng.IntN(10) {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		sb.WriteString(".\n")
	}
	var written int64
	for i := 0; written < size*6/10; i++ {
		n := min(int64(1<<20+rng.IntN(15<<20)), size*6/10-written)
		if err := write(filepath.Join(dir, "logs", fmt.Sprintf("app-%03d.log", i)), n, logLine); err != nil {
			return err
		}
		written += n
	}
	for i := 0; written < size*8/10; i++ {
		n := min(int64(64<<10+rng.IntN(448<<10)), size*8/10-written)
		if err := write(filepath.Join(dir, "docs", fmt.Sprintf("d%02d", i%20), fmt.Sprintf("page-%04d.txt", i)), n, textLine); err != nil {
			return err
		}
		written += n
	}
	if err := sqliteDB(filepath.Join(dir, "db", "orders.sqlite"), size-written); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// sqliteDB makes a database of about size bytes of order rows with the sqlite3 CLI.
func sqliteDB(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	rows := size / 150 // ~150 bytes a row with its index entry, measured
	sql := fmt.Sprintf(`PRAGMA page_size=4096; CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, amount REAL, sku TEXT, note TEXT, created TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT %d)
INSERT INTO orders SELECT x, 'customer-'||(abs(random())%%50000), abs(random())%%100000/100.0, 'SKU-'||(abs(random())%%900+100),
 'shipped via standard delivery, signed by recipient', datetime(1767225600 + x*7, 'unixepoch') FROM c;
CREATE INDEX orders_customer ON orders(customer);`, rows)
	cmd := exec.Command("sqlite3", path)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sqlite3 (apt-get install sqlite3): %w: %s", err, out)
	}
	return nil
}

// generateBig writes one file of size random bytes.
func generateBig(dir string, size int64) error {
	p := filepath.Join(dir, "disk.img")
	if st, err := os.Stat(p); err == nil && st.Size() == size {
		return nil
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{3}))
	buf := make([]byte, 4<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		fill(rng, buf)
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
