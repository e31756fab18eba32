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

// Diff is what a sync restore would change in a target: a file is unchanged when its size and
// modification time match (Kopia's incremental test) and so do its mode and owner (dropStale's).
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

// DiffTree compares the snapshot tree root with the local directory target, reading only;
// owners: a file whose owner differs is changed (the restore sets owners).
func DiffTree(ctx context.Context, root kfs.Entry, target string, owners bool) (*Diff, error) {
	d := &Diff{}
	dir, ok := root.(kfs.Directory)
	if !ok {
		return nil, errors.New("the snapshot's root is not a directory")
	}
	return d, d.dir(ctx, dir, target, owners)
}

func (d *Diff) dir(ctx context.Context, dir kfs.Directory, local string, owners bool) error {
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
			if err := d.dir(ctx, sub, p, owners); err != nil {
				return err
			}
		case !exists:
			d.Added++
			d.AddedBytes += e.Size()
		case fi.IsDir():
			d.remove(p, fi)
			d.Added++
			d.AddedBytes += e.Size()
		case keptByKopia(e, fi) && sameMeta(ctx, e, fi, p, owners):
			d.Unchanged++
		default:
			d.Changed++
			d.ChangedBytes += e.Size()
		}
	}
	return d.removeUnseen(local, seen)
}

// removeUnseen counts as removed what directory local holds that the snapshot's does not (seen).
func (d *Diff) removeUnseen(local string, seen map[string]bool) error {
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

// keptByKopia is Kopia's incremental test: it keeps a regular file of the same size and
// modification time, and any symlink, without looking further.
func keptByKopia(e kfs.Entry, fi os.FileInfo) bool {
	m := e.Mode()
	switch {
	case m.IsRegular() && fi.Mode().IsRegular():
		return fi.Size() == e.Size() && fi.ModTime().Sub(e.ModTime()).Abs() < sameTime
	case m&os.ModeSymlink != 0:
		return fi.Mode()&os.ModeSymlink != 0
	}
	return false
}

// modeBits are the bits a restore sets on a file.
const modeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// sameMeta says whether a local entry Kopia would keep also has the snapshot's link target,
// mode and (with owners) owner: a chmod, chown or re-pointed symlink leaves size and time alone.
func sameMeta(ctx context.Context, e kfs.Entry, fi os.FileInfo, p string, owners bool) bool {
	if e.Mode()&os.ModeSymlink != 0 {
		if !sameLink(ctx, e, p) {
			return false
		}
	} else if fi.Mode()&modeBits != e.Mode()&modeBits {
		return false
	}
	if uid, gid, ok := fileOwner(fi); ok && owners {
		o := e.Owner()
		return uid == o.UserID && gid == o.GroupID
	}
	return true
}

// dropStale removes from the local tree the files and symlinks Kopia's incremental restore
// would keep although they differ from the snapshot (mode, owner, link target), so that the
// sync rewrites them. It returns how many it removed.
func dropStale(ctx context.Context, dir kfs.Directory, local string, owners bool) (int, error) {
	n := 0
	err := kfs.IterateEntries(ctx, dir, func(ctx context.Context, e kfs.Entry) error {
		p := filepath.Join(local, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return nil // missing: restored anyway
		}
		if sub, ok := e.(kfs.Directory); ok {
			if fi.IsDir() {
				k, err := dropStale(ctx, sub, p, owners)
				n += k
				return err
			}
			return nil
		}
		if keptByKopia(e, fi) && !sameMeta(ctx, e, fi, p, owners) {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove %s, which differs from the snapshot: %w", p, err)
			}
			n++
		}
		return nil
	})
	return n, err
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
