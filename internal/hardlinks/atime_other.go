//go:build !linux && !darwin && !windows

package hardlinks

import (
	"io/fs"
	"time"
)

// atime is fi's modification time on systems the release does not build for: their Stat_t
// differ, and a directory's access time put back wrong by a relink costs nothing.
func atime(fi fs.FileInfo) time.Time { return fi.ModTime() }
