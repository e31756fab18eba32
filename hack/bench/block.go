package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The block suite (issue 25, `make bench-block`): one device image of blockMiB MiB, 60 % of it
// data in random runs between zero runs, backed up by the mover's block path (`mover backup
// --block`, volume.img cut by mover.BlockSplitter) and by `kopia snapshot create --stdin-file`
// of the same image (the CLI's defaults), both to SeaweedFS without compression; then 1 % of the image
// changed and an incremental backup by each; then a restore by each — the mover writes the image
// over a device (here a file of the device's size) and syncs it, kopia `snapshot restore
// --write-sparse-files` writes volume.img, and its time includes an fsync of that file, so both
// have the data on disk when the clock stops. The bucket growth of the incremental is the bytes
// the prefix gained, listed.
var blockMiB int

const (
	blockDataShare = 0.60    // of the image that is data (the rest reads as zeros)
	blockChange    = 0.01    // of the image rewritten before the incremental
	blockExtent    = 1 << 20 // a changed extent: 1 MiB at a 4 KiB-aligned offset, as a file system writes (so it spans one chunk more than its size)
)

func benchBlock() error {
	var err error
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	for _, p := range []*string{&moverBin, &kopiaBin, &weedBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
		if _, err := os.Stat(*p); err != nil {
			return fmt.Errorf("%w (run hack/tools.sh kopia / seaweedfs and make build)", err)
		}
	}
	img := filepath.Join(work, fmt.Sprintf("block-%d.img", blockMiB))
	if err := generateImage(img, int64(blockMiB)<<20); err != nil {
		return fmt.Errorf("device image: %w", err)
	}
	treeDir, treeBytes = img, int64(blockMiB)<<20
	fmt.Printf("image: %s, %d MiB, %.0f %% data (%d CPUs)\n", img, blockMiB, blockDataShare*100, numCPU())

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

	kopia := &kopiaBlock{srv: srv, dir: filepath.Join(work, "kopia-block")}
	mover := &moverBlock{moverT: moverT{name: "mover-block", s3: srv, compression: "none"}}
	return runBlock(img, srv, kopia, mover)
}

// runBlock measures first backups, incrementals (each after its own 1 % change) and restores,
// the tools interleaved, the best of --reps runs each, and prints the ratios against the goals.
func runBlock(img string, srv *s3server.Server, kopia *kopiaBlock, mover *moverBlock) error {
	tools := []blockTarget{kopia, mover}
	res := map[string]*series{}
	growth := map[string]int64{}
	for _, t := range tools {
		res[t.label()] = &series{}
	}
	best := func(old, r run) run {
		if old.wall == 0 || r.wall < old.wall {
			old.wall = r.wall
		}
		old.rssMB = max(old.rssMB, r.rssMB)
		return old
	}
	warmFile(img)
	for rep := range reps {
		for _, t := range tools {
			if err := t.setup(); err != nil {
				return fmt.Errorf("%s setup: %w", t.label(), err)
			}
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s first backup: %w", t.label(), err)
			}
			res[t.label()].first = best(res[t.label()].first, r)
			fmt.Printf("  %-11s first backup  %6.2fs %6.0f MB/s  %4.0f MB RSS  %5.1fs CPU  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.rssMB, r.cpu.Seconds(), rep+1)
		}
	}
	var changed int64
	for rep := range reps {
		n, err := changeImage(img, rep)
		if err != nil {
			return err
		}
		changed = n
		warmFile(img)
		for _, t := range tools {
			before, err := prefixBytes(srv, t.prefix())
			if err != nil {
				return err
			}
			r, err := t.backup()
			if err != nil {
				return fmt.Errorf("%s incremental backup: %w", t.label(), err)
			}
			after, err := prefixBytes(srv, t.prefix())
			if err != nil {
				return err
			}
			if g := after - before; rep == 0 || g > growth[t.label()] {
				growth[t.label()] = g // the worst run
			}
			res[t.label()].incr = best(res[t.label()].incr, r)
			fmt.Printf("  %-11s incremental   %6.2fs  bucket +%.1f MiB for %.1f MiB changed  (run %d)\n", t.label(), r.wall.Seconds(),
				float64(after-before)/(1<<20), float64(n)/(1<<20), rep+1)
		}
	}
	for rep := range reps {
		for _, t := range tools {
			dst := filepath.Join(work, "restore-"+t.label())
			_ = os.RemoveAll(dst)
			r, out, err := t.restoreImage(dst)
			if err != nil {
				return fmt.Errorf("%s restore: %w", t.label(), err)
			}
			if err := sameImage(img, out); err != nil {
				return fmt.Errorf("%s restore: %w", t.label(), err)
			}
			_ = os.RemoveAll(dst)
			res[t.label()].restore = best(res[t.label()].restore, r)
			fmt.Printf("  %-11s restore       %6.2fs %6.0f MB/s  %4.0f MB RSS  %5.1fs CPU  (run %d)\n", t.label(), r.wall.Seconds(), mbps(r), r.rssMB, r.cpu.Seconds(), rep+1)
		}
	}
	k, m := res[kopia.label()], res[mover.label()]
	fmt.Printf("\nblock %d MiB: first backup %.2fs (kopia %.2fs), incremental %.2fs (kopia %.2fs), restore %.2fs (kopia %.2fs)\n",
		blockMiB, m.first.wall.Seconds(), k.first.wall.Seconds(), m.incr.wall.Seconds(), k.incr.wall.Seconds(), m.restore.wall.Seconds(), k.restore.wall.Seconds())
	fmt.Printf("block: first backup throughput mover/kopia = %.2f (goal ≥ 1.0)  incremental time mover/kopia = %.2f (goal ≤ 1.0)  restore throughput mover/kopia = %.2f (goal ≥ 1.0)\n",
		k.first.wall.Seconds()/m.first.wall.Seconds(), m.incr.wall.Seconds()/k.incr.wall.Seconds(), k.restore.wall.Seconds()/m.restore.wall.Seconds())
	fmt.Printf("block: bucket growth on the incremental / changed bytes: mover %.3f, kopia %.2f (goal ≤ 2; %.1f MiB changed)\n",
		float64(growth[mover.label()])/float64(changed), float64(growth[kopia.label()])/float64(changed), float64(changed)/(1<<20))
	return nil
}

type blockTarget interface {
	label() string
	prefix() string // the tool's prefix in the bucket
	setup() error
	backup() (run, error)
	restoreImage(dst string) (run, string, error) // the restored image's path
}

// ---- kopia CLI: snapshot create --stdin-file of the image

type kopiaBlock struct {
	srv *s3server.Server
	dir string
	pfx string
}

func (k *kopiaBlock) label() string  { return "kopia-block" }
func (k *kopiaBlock) prefix() string { return k.pfx }
func (k *kopiaBlock) setup() error {
	_ = os.RemoveAll(k.dir)
	k.pfx = fmt.Sprintf("kopia-block-%d/", nextSetup())
	if _, err := execRun(kopiaEnv(k.dir), kopiaBin, "repository", "create", "s3", "--cache-directory", filepath.Join(k.dir, "cache"), "--bucket", k.srv.Bucket, "--prefix", k.pfx,
		"--endpoint", strings.TrimPrefix(k.srv.Endpoint, "http://"), "--disable-tls", "--region", "us-east-1",
		"--access-key", k.srv.AccessKey, "--secret-access-key", k.srv.SecretKey); err != nil {
		return err
	}
	return kopiaPolicy(k.dir, "none")
}

// The snapshot's source is a name only (kopia reads stdin); it identifies the series.
const kopiaBlockSource = "/bench/block-device"

func (k *kopiaBlock) backup() (run, error) {
	return execIn(kopiaEnv(k.dir), treeDir, kopiaBin, "snapshot", "create", kopiaBlockSource, "--stdin-file=volume.img", "--no-progress")
}

func (k *kopiaBlock) restoreImage(dst string) (run, string, error) {
	if _, err := execRun(kopiaEnv(k.dir), kopiaBin, "cache", "set", "--content-cache-size-mb=0"); err != nil {
		return run{}, "", err
	}
	cmd := exec.Command(kopiaBin, "snapshot", "list", kopiaBlockSource, "--json")
	cmd.Env = kopiaEnv(k.dir)
	out, err := cmd.Output()
	if err != nil {
		return run{}, "", fmt.Errorf("kopia snapshot list: %w", err)
	}
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &snaps); err != nil || len(snaps) == 0 {
		return run{}, "", fmt.Errorf("kopia snapshot list: %v (%d snapshots)", err, len(snaps))
	}
	start := time.Now()
	r, err := execRun(kopiaEnv(k.dir), kopiaBin, "snapshot", "restore", snaps[len(snaps)-1].ID, dst, "--no-progress", "--write-sparse-files")
	if err != nil {
		return r, "", err
	}
	img := filepath.Join(dst, "volume.img")
	if err := syncFile(img); err != nil { // the mover syncs the device: so must the reference
		return r, "", err
	}
	r.wall = time.Since(start)
	return r, img, nil
}

// ---- the mover's block path

type moverBlock struct{ moverT }

func (m *moverBlock) prefix() string {
	// m.location is the bucket URL with the prefix as its path: s3://bucket/prefix?...
	p := strings.TrimPrefix(m.location, "s3://"+m.s3.Bucket+"/")
	return p[:strings.IndexByte(p, '?')] + "/"
}

func (m *moverBlock) backup() (run, error) {
	r, out, err := execOut(m.env(), moverBin, "mover", "backup", "--block", "--source", treeDir, "--pvc", "disk", "--backup", "bench")
	if err != nil {
		return r, err
	}
	res, err := lastResult(out)
	if err != nil {
		return r, err
	}
	lastSnapshot[m.name] = res.SnapshotID
	return r, nil
}

// restoreImage writes the snapshot over a new sparse file of the device's size, as over a new
// thin volume.
func (m *moverBlock) restoreImage(dst string) (run, string, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return run{}, "", err
	}
	img := filepath.Join(dst, "volume.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		return run{}, "", err
	}
	if err := os.Truncate(img, treeBytes); err != nil {
		return run{}, "", err
	}
	r, err := execRun(m.env(), moverBin, "mover", "restore", "--block", "--snapshot", lastSnapshot[m.name], "--target", img)
	return r, img, err
}

// ---- the image

// generateImage writes a deterministic image of size bytes once: runs of random data (64 KiB to
// 16 MiB, 4 KiB aligned) between zero runs (holes) so that blockDataShare of it is data.
func generateImage(path string, size int64) error {
	stamp := path + ".complete"
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{25}))
	buf := make([]byte, 16<<20)
	var off, data int64
	for off < size {
		n := min(int64(64<<10+rng.IntN(16<<20-64<<10))&^4095, size-off)
		// Keep the share of data on target: write when behind it, else leave a hole.
		if float64(data) < blockDataShare*float64(off+n) {
			fill(rng, buf[:n])
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
			data += n
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fmt.Printf("generated %s: %d MiB data of %d MiB\n", path, data>>20, size>>20)
	return os.WriteFile(stamp, nil, 0o644)
}

// changeImage rewrites blockChange of the image in 1 MiB extents at random 4 KiB-aligned offsets
// (new data over data and over zeros alike), different per rep; it returns the bytes changed.
func changeImage(path string, rep int) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	_ = os.Remove(path + ".complete") // the next run regenerates the original
	size := treeBytes
	rng := rand.New(rand.NewChaCha8([32]byte{26, byte(rep)}))
	buf := make([]byte, blockExtent)
	var changed int64
	for changed < int64(blockChange*float64(size)) {
		off := rng.Int64N((size-blockExtent)/4096) * 4096
		fill(rng, buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, err
		}
		changed += blockExtent
	}
	fmt.Printf("changed %d extents of 1 MiB (%.1f %% of the image)\n", changed/blockExtent, 100*float64(changed)/float64(size))
	return changed, f.Sync()
}

// sameImage compares two images byte for byte.
func sameImage(want, got string) error {
	a, err := os.Open(want)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		return err
	}
	defer b.Close()
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	var off int64
	for {
		na, ea := io.ReadFull(a, ba)
		nb, _ := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s in the 4 MiB at %d (%d vs %d bytes read)", got, want, off, nb, na)
		}
		off += int64(na)
		if errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF) {
			return nil
		}
		if ea != nil {
			return ea
		}
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func warmFile(path string) {
	if f, err := os.Open(path); err == nil {
		_, _ = io.Copy(io.Discard, f)
		f.Close()
	}
}

// prefixBytes sums the sizes of the objects under prefix.
func prefixBytes(srv *s3server.Server, prefix string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(s3server.Client(srv), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)})
	var n int64
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			n += aws.ToInt64(o.Size)
		}
	}
	return n, nil
}

// execIn is execOut with the file at stdin as the tool's standard input.
func execIn(env []string, stdin, name string, args ...string) (run, error) {
	f, err := os.Open(stdin)
	if err != nil {
		return run{}, err
	}
	defer f.Close()
	benchStdin = f
	defer func() { benchStdin = nil }()
	return execRun(env, name, args...)
}
