package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/kopia/kopia/repo"
	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/format"
	"github.com/kopia/kopia/repo/maintenance"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// A repository in an immutable location is created with Kopia's own repository retention: its
// kopia.blobcfg holds the lock's mode and period, Kopia then asks for that retention on every
// blob it puts (packs, indexes, manifests, the format blobs themselves), and its full maintenance
// extends the lock of every live blob (ExtendObjectLocks). This adapter turns the retention Kopia
// asks for into the S3 Object Lock of the upload, and refuses it on any other store.

// retentionUntil is when a blob put now with opts unlocks.
func retentionUntil(mode kblob.RetentionMode, period time.Duration) (string, time.Time, error) {
	if mode != kblob.Governance && mode != kblob.Compliance {
		return "", time.Time{}, fmt.Errorf("retention mode %q: %w", mode, kblob.ErrUnsupportedPutBlobOption)
	}
	if period <= 0 {
		return "", time.Time{}, fmt.Errorf("retention period %s: %w", period, kblob.ErrUnsupportedPutBlobOption)
	}
	return string(mode), time.Now().Add(period).UTC(), nil
}

// ExtendBlobRetention moves the blob's lock to now + opts.RetentionPeriod (Kopia's full
// maintenance, on a repository with retention): S3 only.
func (s *Storage) ExtendBlobRetention(ctx context.Context, id kblob.ID, opts kblob.ExtendOptions) error {
	return s.trace.traced(ctx, "extend", id, func(ctx context.Context) error {
		mode, until, err := retentionUntil(opts.RetentionMode, opts.RetentionPeriod)
		if err != nil {
			return err
		}
		if s.s3 == nil {
			return fmt.Errorf("extend the lock of %s in %s: %w", id, s.opts.Display, kblob.ErrUnsupportedPutBlobOption)
		}
		if err := store.ExtendRetention(ctx, s.bucket, s.s3.bucket, s.s3.keyPrefix+string(id), mode, until); err != nil {
			return s.translate("extend the lock of", id, err)
		}
		return nil
	})
}

// lockPutObject sets the S3 lock of a direct put.
func lockPutObject(mode string, until time.Time) (s3types.ObjectLockMode, *time.Time) {
	return s3types.ObjectLockMode(mode), aws.Time(until)
}

// checkLockedMaintenance refuses a lock that Kopia's full maintenance could not keep up: a blob
// written just after one full maintenance must still be locked at the next, with a day to spare
// (Kopia's own rule, maintenance.CheckExtendRetention).
func checkLockedMaintenance(ctx context.Context, lock *store.Lock, p *maintenance.Params) error {
	cfg := format.BlobStorageConfiguration{RetentionMode: kblob.RetentionMode(lock.Mode), RetentionPeriod: lock.Period}
	if err := maintenance.CheckExtendRetention(ctx, cfg, p); err != nil {
		return fmt.Errorf("object lock for %s: full maintenance runs every %s and extends the locks, so the lock must last at least a day longer than that (%s at least): %w", lock.Period, p.FullCycle.Interval, p.FullCycle.Interval+24*time.Hour, err)
	}
	return nil
}

// MinLockPeriod is the shortest lock a location takes: Kopia's full maintenance interval (24h by
// default) and a day to spare.
func MinLockPeriod() time.Duration {
	return maintenance.DefaultParams().FullCycle.Interval + 24*time.Hour
}

// lockEverything makes every later put of an open repository with retention carry it, those Kopia
// makes without (its repository log blobs) included: in an immutable location nothing is written
// unlocked.
func (r *Repository) lockEverything(ctx context.Context) error {
	dr, ok := r.Repository.(repo.DirectRepository)
	if !ok {
		return nil
	}
	cfg, err := dr.FormatManager().BlobCfgBlob(ctx)
	if err != nil {
		return fmt.Errorf("read the blob configuration of %s: %w", r.display, err)
	}
	if cfg.IsRetentionEnabled() {
		r.st.lock.Store(&kblob.ExtendOptions{RetentionMode: cfg.RetentionMode, RetentionPeriod: cfg.RetentionPeriod})
	}
	return nil
}
