package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	kfs "github.com/kopia/kopia/fs"
)

// Diff is what a sync restore would change in a target: counted as Kopia's incremental restore
// decides (a file is unchanged when its size and modification time match).
type Diff struct {
	Added        int64 `json:"added"`   // files and symlinks in the snapshot, not in the target
	Changed      int64 `json:"changed"` // in both, different
	Removed      int64 `json:"removed"` // entries in the target, not in the snapshot
	Unchanged    int64 `json:"unchanged"`
	AddedBytes   int64 `json:"addedBytes"`
	ChangedBytes int64 `json:"changedBytes"` // bytes written for changed files
	RemovedBytes int64 `json:"removedBytes"`
}

// sameTime is Kopia's tolerance for "the same modification time".
const sameTime = 100 * time.Millisecond

// DiffTree compares the snapshot tree root with the local directory target, reading only.
func DiffTree(ctx context.Context, root kfs.Entry, target string) (*Diff, error) {
	d := &Diff{}
	dir, ok := root.(kfs.Directory)
	if !ok {
		return nil, errors.New("the snapshot's root is not a directory")
	}
	return d, d.dir(ctx, dir, target)
}

func (d *Diff) dir(ctx context.Context, dir kfs.Directory, local string) error {
	entries, err := kfs.GetAllEntries(ctx, dir)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		seen[e.Name()] = true
		p := filepath.Join(local, e.Name())
		fi, err := os.Lstat(p)
		exists := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		switch m := e.Mode(); {
		case m.IsDir():
			if exists && !fi.IsDir() {
				d.remove(p, fi)
				exists = false
			}
			sub, ok := e.(kfs.Directory)
			if !ok {
				continue
			}
			if !exists {
				if err := d.addTree(ctx, sub); err != nil {
					return err
				}
				continue
			}
			if err := d.dir(ctx, sub, p); err != nil {
				return err
			}
		case !exists:
			d.Added++
			d.AddedBytes += e.Size()
		case fi.IsDir():
			d.remove(p, fi)
			d.Added++
			d.AddedBytes += e.Size()
		case m.IsRegular() && fi.Mode().IsRegular() && fi.Size() == e.Size() && fi.ModTime().Sub(e.ModTime()).Abs() < sameTime:
			d.Unchanged++
		case m&os.ModeSymlink != 0 && fi.Mode()&os.ModeSymlink != 0 && sameLink(ctx, e, p):
			d.Unchanged++
		default:
			d.Changed++
			d.ChangedBytes += e.Size()
		}
	}
	locals, err := os.ReadDir(local)
	if err != nil {
		return err
	}
	for _, l := range locals {
		if !seen[l.Name()] {
			fi, err := l.Info()
			if err != nil {
				return err
			}
			d.remove(filepath.Join(local, l.Name()), fi)
		}
	}
	return nil
}

func sameLink(ctx context.Context, e kfs.Entry, p string) bool {
	l, ok := e.(kfs.Symlink)
	if !ok {
		return false
	}
	want, err := l.Readlink(ctx)
	got, lerr := os.Readlink(p)
	return err == nil && lerr == nil && want == got
}

// addTree counts a snapshot directory missing from the target.
func (d *Diff) addTree(ctx context.Context, dir kfs.Directory) error {
	return kfs.IterateEntries(ctx, dir, func(ctx context.Context, e kfs.Entry) error {
		if sub, ok := e.(kfs.Directory); ok {
			return d.addTree(ctx, sub)
		}
		d.Added++
		d.AddedBytes += e.Size()
		return nil
	})
}

// remove counts a local entry (a whole tree for a directory) the sync would delete.
func (d *Diff) remove(p string, fi os.FileInfo) {
	if !fi.IsDir() {
		d.Removed++
		d.RemovedBytes += fi.Size()
		return
	}
	_ = filepath.WalkDir(p, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		d.Removed++
		if info, err := e.Info(); err == nil {
			d.RemovedBytes += info.Size()
		}
		return nil
	})
}

// String is the summary people read.
func (d *Diff) String() string {
	return fmt.Sprintf("%d added (%d bytes), %d changed (%d bytes), %d removed (%d bytes), %d unchanged",
		d.Added, d.AddedBytes, d.Changed, d.ChangedBytes, d.Removed, d.RemovedBytes, d.Unchanged)
}
