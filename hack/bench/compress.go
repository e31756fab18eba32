package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
	randomTree := treeDir
	ctree := filepath.Join(work, fmt.Sprintf("ctree-%d", compressMiB))
	if err := generateCompressible(ctree, int64(compressMiB)<<20); err != nil {
		return fmt.Errorf("compressible tree: %w", err)
	}
	big := filepath.Join(work, fmt.Sprintf("big-%d", bigMiB))
	if err := generateBig(big, int64(bigMiB)<<20); err != nil {
		return fmt.Errorf("big file: %w", err)
	}
	wdir := filepath.Join(work, "weed")
	_ = os.RemoveAll(wdir)
	if err := os.MkdirAll(wdir, 0o755); err != nil {
		return err
	}
	srv, stop, err := s3server.StartSeaweedFS(weedBin, wdir)
	if err != nil {
		return err
	}
	defer stop()
	os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	os.Setenv("AWS_REGION", "us-east-1")

	for _, tree := range []struct{ name, dir string }{{"random", randomTree}, {"compressible", ctree}} {
		treeDir, treeBytes = tree.dir, duBytes(tree.dir)
		fmt.Printf("\n== %s tree: %.0f MB in %d files\n", tree.name, float64(treeBytes)/1e6, countFiles(treeDir))
		kopia := kopiaS3{srv: srv, compression: "none", dir: filepath.Join(work, "kopia-s3")} // the CLI's default: none
		auto := &moverT{name: "mover-auto", s3: srv, compression: "auto"}
		none := &moverT{name: "mover-none", s3: srv, compression: "none"}
		res, err := measureTargets([]target{kopia, auto, none}, true)
		if err != nil {
			return err
		}
		k, a, n := res["kopia-s3"], res["mover-auto"], res["mover-none"]
		fmt.Printf("%s: first backup throughput mover/kopia = %.2f (goal ≥ 1.1)  restore throughput mover/kopia = %.2f (goal ≥ 1.0)\n",
			tree.name, k.first.wall.Seconds()/a.first.wall.Seconds(), k.restore.wall.Seconds()/a.restore.wall.Seconds())
		fmt.Printf("%s: bucket bytes auto/tree = %.3f, none/tree = %.3f  first backup time auto/none = %.2f (goal: compressible ≤ 1.1, random ≤ 1.03)\n",
			tree.name, float64(lastUploaded["mover-auto"])/float64(treeBytes), float64(lastUploaded["mover-none"])/float64(treeBytes),
			a.first.wall.Seconds()/n.first.wall.Seconds())
	}

	treeDir, treeBytes = big, duBytes(big)
	fmt.Printf("\n== one %d MiB file\n", bigMiB)
	kopia := kopiaS3{srv: srv, compression: "none", dir: filepath.Join(work, "kopia-s3")}
	auto := &moverT{name: "mover-auto", s3: srv, compression: "auto"}
	res, err := measureTargets([]target{kopia, auto}, false)
	if err != nil {
		return err
	}
	fmt.Printf("big file: upload throughput mover (64 MiB parts in parallel) / kopia CLI (one stream up to 2 GiB) = %.2f (goal ≥ 1.5)\n",
		res["kopia-s3"].first.wall.Seconds()/res["mover-auto"].first.wall.Seconds())

	limited := &moverT{name: "mover-limit", s3: srv, compression: "none", extraEnv: []string{"PVBACKUP_UPLOAD_LIMIT=" + uploadLimit}}
	if err := limited.setup(); err != nil {
		return err
	}
	r, err := limited.backup()
	if err != nil {
		return err
	}
	got := float64(lastUploaded["mover-limit"]) / r.wall.Seconds()
	fmt.Printf("upload limit %s: %.0f bytes in %.1fs = %.2f MiB/s (goal within 10%% of the limit)\n", uploadLimit, float64(lastUploaded["mover-limit"]), r.wall.Seconds(), got/(1<<20))
	return nil
}

// measureTargets runs, for each target, `reps` first backups (each into a new repository) and,
// with restores, `reps` restores of its last one, interleaved; the best run counts.
func measureTargets(targets []target, restores bool) (map[string]*series, error) {
	res := map[string]*series{}
	for _, t := range targets {
		res[t.label()] = &series{}
	}
	best := func(old, r run) run {
		if old.wall == 0 || r.wall < old.wall {
			return r
		}
		return old
	}
	warm(treeDir)
	for rep := range reps {
		for _, t := range targets {
			if err := t.setup(); err != nil {
				return nil, fmt.Errorf("%s setup: %w", t.label(), err)
			}
			r, err := t.backup()
			if err != nil {
				return nil, fmt.Errorf("%s first backup: %w", t.label(), err)
			}
			res[t.label()].first = best(res[t.label()].first, r)
			fmt.Printf("  %-11s first backup %7.2fs %6.0f MB/s  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), rep+1)
		}
	}
	for rep := range reps {
		if !restores {
			break
		}
		for _, t := range targets {
			dst := filepath.Join(work, "restore-"+t.label())
			_ = os.RemoveAll(dst)
			r, err := t.restore(dst)
			if err != nil {
				return nil, fmt.Errorf("%s restore: %w", t.label(), err)
			}
			if got, want := duBytes(dst), duBytes(treeDir); got != want {
				return nil, fmt.Errorf("%s restored %d bytes; the tree has %d", t.label(), got, want)
			}
			_ = os.RemoveAll(dst)
			res[t.label()].restore = best(res[t.label()].restore, r)
			fmt.Printf("  %-11s restore      %7.2fs %6.0f MB/s  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), rep+1)
		}
	}
	return res, nil
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
