//go:build windows

package store

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// lockFile takes an exclusive lock on path by creating it exclusively, waiting up to 30 s for
// another holder to remove it; the returned func releases it.
func lockFile(path string) (func(), error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: %w (remove it if no kubectl-pvbackup is running)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
