//go:build !windows

package lease

import (
	"errors"
	"syscall"
)

// alive reports whether process pid of this machine is running.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
