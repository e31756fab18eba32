package hardlinks

import (
	"io/fs"
	"syscall"
	"time"
)

// atime is fi's access time, where the system keeps one; else its modification time.
func atime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Unix())
	}
	return fi.ModTime()
}
