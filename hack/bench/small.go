package main

// The small-files part of the mover suite (`make bench-mover`; alone with --suite small): a tree
// of many small files (50,000 of 0.5–8 KiB in 500 directories by default), backed up and restored
// by the mover to a filesystem location and to SeaweedFS. A restore of many small files pays per
// file (its contents fetched, the file created, its owner, mode and times set) where a backup
// pays mostly per byte; the goal is a restore at ≥ 0.8× the backup's files per second.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// smallFiles is how many files the small tree has (--small-files; 0 leaves it out); smallTarget
// is where restores write (--small-target; default the work directory). A claim a restore fills
// is a fresh filesystem; on a disk that churns (this machine's, where every test deletes tens of
// thousands of files) ext4 spends most of a create looking for an inode not deleted recently, so
// the figures are given into the work directory and, with --small-target /dev/shm, into memory,
// where only the mover's own cost remains.
var (
	smallFiles  int
	smallTarget string
)

// generateSmall writes the small tree once (deterministic).
func generateSmall(dir string, n int) error {
	stamp := fmt.Sprintf("%s.complete-%d", dir, n) // beside the tree, not in it
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	rng := rand.New(rand.NewChaCha8([32]byte{3}))
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i%500), fmt.Sprintf("f%05d", i))
		if i < 500 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		b := make([]byte, 512+rng.IntN(15*512))
		fill(rng, b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(stamp, nil, 0o644)
}

type smallRow struct {
	label           string
	backup, restore run
}

// benchSmall measures the mover on the small tree: files per second of backup and restore, best
// of reps, into a fresh location per target (srv nil: filesystem only).
func benchSmall(srv *s3server.Server) error {
	dir := filepath.Join(work, "small-tree")
	if err := generateSmall(dir, smallFiles); err != nil {
		return fmt.Errorf("generate small tree: %w", err)
	}
	fmt.Printf("\nsmall files: %d files, %.0f MB in %s, restored into %s\n", smallFiles, float64(duBytes(dir))/1e6, dir, orWork(smallTarget))
	targets := []*moverT{{name: "mover-fs", location: "file://" + filepath.Join(work, "small-fs")}}
	if srv != nil {
		targets = append(targets, &moverT{name: "mover-s3", s3: srv})
	}
	// Each restore writes into a directory of its own, all removed at the end: files deleted just
	// before a run make ext4 scan its recently deleted inodes on every create (files.go).
	outDir := filepath.Join(orWork(smallTarget), "pvbackup-small-out")
	_ = os.RemoveAll(outDir)
	defer os.RemoveAll(outDir)
	var rows []smallRow
	for _, t := range targets {
		row := smallRow{label: t.label()}
		for rep := range reps {
			// A fresh repository each time: a second backup into the same one would find every
			// content there already.
			if err := t.setup(); err != nil {
				return err
			}
			warm(dir)
			r, out, err := execOut(t.env(), t.binary(), "mover", "backup", "--source", dir, "--pvc", fmt.Sprintf("small-%d", rep), "--backup", "small")
			if err != nil {
				return fmt.Errorf("%s backup: %w", t.label(), err)
			}
			res, err := lastResult(out)
			if err != nil {
				return err
			}
			row.backup = best(row.backup, r)
			dst := filepath.Join(outDir, fmt.Sprintf("%s-%d", t.label(), rep))
			rr, err := execRun(t.env(), t.binary(), "mover", "restore", "--snapshot", res.SnapshotID, "--target", dst, "--sparse=false")
			if err != nil {
				return fmt.Errorf("%s restore: %w", t.label(), err)
			}
			if got := countFiles(dst); got != smallFiles {
				return fmt.Errorf("%s restored %d files; the tree has %d", t.label(), got, smallFiles)
			}
			row.restore = best(row.restore, rr)
			fmt.Printf("  %-9s small files  backup %6.2fs %6.0f files/s  restore %6.2fs %6.0f files/s  (run %d)\n", t.label(),
				r.wall.Seconds(), float64(smallFiles)/r.wall.Seconds(), rr.wall.Seconds(), float64(smallFiles)/rr.wall.Seconds(), rep+1)
		}
		rows = append(rows, row)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tbackup s\tfiles/s\trestore s\tfiles/s\trestore/backup\tpeak RSS MB (backup/restore)")
	for _, r := range rows {
		b, s := float64(smallFiles)/r.backup.wall.Seconds(), float64(smallFiles)/r.restore.wall.Seconds()
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.2f\t%.0f\t%.2f (goal ≥ 0.8)\t%.0f / %.0f\n", r.label, r.backup.wall.Seconds(), b, r.restore.wall.Seconds(), s, s/b, r.backup.rssMB, r.restore.rssMB)
	}
	return tw.Flush()
}

// smallAlone is --suite small: the small tree only, with a SeaweedFS of its own (none with an empty --weed).
func smallAlone() error {
	var err error
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	if moverBin, err = filepath.Abs(moverBin); err != nil {
		return err
	}
	if smallFiles <= 0 {
		return fmt.Errorf("--suite small needs --small-files > 0")
	}
	var srv *s3server.Server
	if weedBin != "" {
		wdir := filepath.Join(work, "weed-small")
		_ = os.RemoveAll(wdir)
		if err := os.MkdirAll(wdir, 0o755); err != nil {
			return err
		}
		var stop func()
		if srv, stop, err = s3server.StartSeaweedFS(weedBin, wdir); err != nil {
			return err
		}
		defer stop()
		os.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		os.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		os.Setenv("AWS_REGION", "us-east-1")
	}
	return benchSmall(srv)
}

func orWork(dir string) string {
	if dir == "" {
		return work
	}
	return dir
}
