//go:build !windows

package mover

import (
	"os"
	"syscall"
)

// fileOwner is fi's owner, where the system has one.
func fileOwner(fi os.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}
