package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// MarkerPrefix is where CheckWritable writes its markers, inside the location's prefix.
const MarkerPrefix = ".pvbackup-doctor/"

// CheckWritable writes a small marker into the location and deletes it again: reading a bucket
// (which Open checks) does not prove that backups can be written to it.
func CheckWritable(ctx context.Context, l *Location) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := MarkerPrefix + hex.EncodeToString(b)
	if err := Upload(ctx, l.bucket, key, strings.NewReader("kubectl-pvbackup doctor marker: safe to delete\n"), nil); err != nil {
		return fmt.Errorf("write a marker %s into %s: %s (the credentials may allow reading only)", key, l.display, shortError(err))
	}
	if err := l.bucket.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete the marker %s from %s: %s (backups need delete rights for prune and for Kopia's own housekeeping)", key, l.display, shortError(err))
	}
	return nil
}
