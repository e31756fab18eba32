package hardlinks

import (
	"context"
	"errors"
	"fmt"
)

// Scan needs the inode numbers and link counts of Unix systems (scan_unix.go). The mover, which
// scans, runs on linux; the plugin only has to build for windows (make release). It says so
// rather than report a volume without hard links.
func Scan(ctx context.Context, root string) (*Record, error) {
	return nil, fmt.Errorf("find the hard links under %s: %w (the mover runs on Linux)", root, errors.ErrUnsupported)
}
