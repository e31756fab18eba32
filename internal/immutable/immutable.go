// Package immutable makes a backup location immutable (`repo init --immutable-for`) and answers
// what is locked: every object a backup writes carries an S3 Object Lock (internal/store for the
// plugin's own files, Kopia's repository retention for volume data), `delete` and `prune` refuse
// a backup until its files unlock, and `repo recover` brings a location back from the versions the
// lock kept after its objects were deleted or overwritten.
package immutable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// ErrNotEmpty is returned (wrapped) by Init for a location that already holds objects.
var ErrNotEmpty = errors.New("location is not empty")

// ParsePeriod reads a lock period: Go's durations ("720h") or whole days ("30d").
func ParsePeriod(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 36500 {
			return 0, fmt.Errorf("--immutable-for %q: want a whole number of days (30d) or a duration (720h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	p, err := time.ParseDuration(s)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("--immutable-for %q: want a whole number of days (30d) or a duration (720h)", s)
	}
	return p, nil
}

// ParseMode reads --mode: compliance (no one can shorten or remove the lock, the bucket's owner
// included) or governance (a principal with s3:BypassGovernanceRetention can).
func ParseMode(s string) (string, error) {
	switch strings.ToLower(s) {
	case "compliance", "":
		return store.Compliance, nil
	case "governance":
		return store.Governance, nil
	}
	return "", fmt.Errorf("--mode %q: use compliance or governance", s)
}

// Check refuses a lock that Kopia's full maintenance could not keep extended (repo.MinLockPeriod).
func Check(lock *store.Lock) error {
	if min := repo.MinLockPeriod(); lock.Period < min {
		return fmt.Errorf("--immutable-for %s is shorter than %s: full maintenance runs every day at most and extends the volume data's locks, so a lock must outlast that interval by a day", lock.Period, min)
	}
	return nil
}

// Init makes an empty location immutable: it proves the bucket locks objects
// (store.CheckObjectLock), then writes the location's config and its key, both locked. From then
// on every command that opens the location writes with the lock.
func Init(ctx context.Context, loc *store.Location, lock *store.Lock, password string) error {
	if err := Check(lock); err != nil {
		return err
	}
	if key, err := firstKey(ctx, loc.Bucket()); err != nil {
		return fmt.Errorf("list %s: %w", loc, err)
	} else if key != "" {
		return fmt.Errorf("%s already holds %s: %w; objects written before cannot be locked after the fact, so an immutable location starts empty (a new bucket or prefix)", loc, key, ErrNotEmpty)
	}
	if err := loc.CheckObjectLock(ctx); err != nil {
		return err
	}
	loc.SetLock(lock)
	b, _ := json.MarshalIndent(store.Config{FormatVersion: 1, ObjectLock: lock}, "", "  ")
	if err := loc.WriteNew(ctx, store.ConfigFile, append(b, '\n'), "application/json"); err != nil {
		return fmt.Errorf("write %s to %s: %w", store.ConfigFile, loc, err)
	}
	if _, err := keyring.Create(ctx, loc, password); err != nil {
		return err
	}
	return nil
}

// firstKey is the first object of the location ("" when it is empty), the lock probe's skipped.
func firstKey(ctx context.Context, b *blob.Bucket) (string, error) {
	it := b.List(&blob.ListOptions{})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(obj.Key, ".pvbackup-") {
			return obj.Key, nil
		}
	}
}
