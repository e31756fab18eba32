package hardlinks

import (
	"io/fs"
	"syscall"
	"time"
)

// atime is fi's last access time.
func atime(fi fs.FileInfo) time.Time {
	if d, ok := fi.Sys().(*syscall.Win32FileAttributeData); ok {
		return time.Unix(0, d.LastAccessTime.Nanoseconds())
	}
	return fi.ModTime()
}
