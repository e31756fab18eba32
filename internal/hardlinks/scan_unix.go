//go:build !windows

package hardlinks

import (
	"context"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// Scan walks the tree under root and returns the groups of its regular files that are one file
// (the same inode), with more than one path in the tree; nil when there are none. Directories it
// cannot read are left out (the backup reports them); symlinks are not followed. It stats only
// regular files, relative to their directory's descriptor.
func Scan(ctx context.Context, root string) (*Record, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	s := &scanner{ctx: ctx, byInode: map[inode][]string{}}
	err = s.dir(f, "")
	f.Close()
	if err != nil {
		return nil, err
	}
	var groups [][]string
	for _, g := range s.byInode {
		if len(g) > 1 {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil, nil
	}
	sortGroups(groups)
	return &Record{Version: version, Groups: groups}, nil
}

type inode struct{ dev, ino uint64 }

type scanner struct {
	ctx     context.Context
	byInode map[inode][]string
	paths   int
}

// dir scans the directory open as f, at rel under the root; it closes nothing.
func (s *scanner) dir(f *os.File, rel string) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	fd := int(f.Fd())
	for {
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if err := s.entry(fd, e, rel); err != nil {
				return err
			}
		}
		if err == io.EOF || len(entries) == 0 {
			return nil
		}
		if err != nil {
			return nil // unreadable: the backup reports it
		}
	}
}

func (s *scanner) entry(fd int, e os.DirEntry, rel string) error {
	p := path.Join(rel, e.Name())
	switch {
	case e.IsDir():
		sub, err := unix.Openat(fd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		f := os.NewFile(uintptr(sub), p)
		err = s.dir(f, p)
		f.Close()
		return err
	case e.Type().IsRegular():
		var st unix.Stat_t
		if err := unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Nlink < 2 {
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		s.byInode[k] = append(s.byInode[k], p)
		if s.paths++; s.paths > MaxPaths {
			return ErrTooMany
		}
	}
	return nil
}
