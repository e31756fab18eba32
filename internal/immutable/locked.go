package immutable

import (
	"context"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// maxBackupFiles bounds the files of one backup whose lock is read (a backup writes four).
const maxBackupFiles = 64

// LockedUntil is when the last of a backup's files unlocks: zero for a location without a lock
// (nothing of it is locked) or a backup whose files have unlocked.
func LockedUntil(ctx context.Context, cat *catalog.Catalog, name string) (time.Time, error) {
	loc := cat.Location()
	if loc.Lock() == nil {
		return time.Time{}, nil
	}
	it := loc.Bucket().List(&blob.ListOptions{Prefix: catalog.Key(name, "")})
	var until time.Time
	for n := 0; ; n++ {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return until, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("list the files of backup %q in %s: %w", name, loc, loc.Scrub(err))
		}
		if n == maxBackupFiles {
			return time.Time{}, fmt.Errorf("backup %q in %s has more than %d files: not one this tool wrote", name, loc, maxBackupFiles)
		}
		u, err := loc.RetainedUntil(ctx, obj.Key)
		if err != nil {
			return time.Time{}, fmt.Errorf("read the lock of %s in %s: %w", obj.Key, loc, loc.Scrub(err))
		}
		if u.After(until) {
			until = u
		}
	}
}

// ErrLocked is returned (wrapped) for a backup that cannot be deleted yet.
var ErrLocked = fmt.Errorf("backup is locked")

// RefuseLocked returns an error naming each backup of names that is still locked at now (with the
// date it unlocks), before anything is deleted; nil when none is.
func RefuseLocked(ctx context.Context, cat *catalog.Catalog, now time.Time, names ...string) error {
	var locked []string
	for _, name := range names {
		until, err := LockedUntil(ctx, cat, name)
		if err != nil {
			return err
		}
		if until.After(now) {
			locked = append(locked, fmt.Sprintf("%q until %s", name, until.Format(time.RFC3339)))
		}
	}
	if len(locked) == 0 {
		return nil
	}
	return fmt.Errorf("%s is immutable (%s): backup %v is locked and nothing was deleted; it can be deleted once it unlocks: %w",
		cat.Location(), cat.Location().Lock(), locked, ErrLocked)
}
