package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// An immutable location (`repo init --immutable-for`) writes every object with an S3 Object Lock
// retention: until then no credential can delete or overwrite that version of it (compliance), or
// only one allowed to bypass governance can (governance). What the location is made with is in
// ConfigFile, itself written locked; Open reads it, so every write through the Location (Put,
// NewStream, WriteNew) carries the lock and none is ever silently written unlocked. Kopia's own
// blobs are locked by Kopia (its kopia.blobcfg) through internal/repo.

// ConfigFile is the location's settings, at the root of its prefix.
const ConfigFile = "location.json"

// maxConfigFile bounds what is read of ConfigFile (a real one is ~150 bytes).
const maxConfigFile = 64 << 10

// Lock modes, as S3 names them.
const (
	Compliance = "COMPLIANCE"
	Governance = "GOVERNANCE"
)

// ErrLockUnsupported is returned (wrapped, with the reason) for a location whose store cannot
// lock objects, or where the bucket is not made for it.
var ErrLockUnsupported = errors.New("object lock is not available")

// Lock is a location's object lock: every object is retained for Period after it is written.
type Lock struct {
	Mode   string        `json:"mode"`
	Period time.Duration `json:"period"`
}

// Until is when an object written at t unlocks.
func (k *Lock) Until(t time.Time) time.Time { return t.Add(k.Period).UTC() }

// String is "COMPLIANCE for 720h0m0s".
func (k *Lock) String() string { return fmt.Sprintf("%s for %s", k.Mode, k.Period) }

// Config is ConfigFile.
type Config struct {
	FormatVersion int   `json:"formatVersion"`
	ObjectLock    *Lock `json:"objectLock,omitempty"`
}

// Lock returns the location's object lock; nil when it has none.
func (l *Location) Lock() *Lock { return l.lock }

// SetLock makes every later write through the location carry lock (repo init, before it writes
// the location's first objects).
func (l *Location) SetLock(lock *Lock) { l.lock = lock }

// loadConfig reads ConfigFile, if the location has one, and takes its lock. A config that cannot
// be read fails the open: writing unlocked into a location made immutable is never an option.
func (l *Location) loadConfig(ctx context.Context) error {
	r, err := l.bucket.NewReader(ctx, ConfigFile, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s of %s: %s", ConfigFile, l.display, shortError(l.Scrub(err)))
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxConfigFile+1))
	if err != nil {
		return fmt.Errorf("read %s of %s: %s", ConfigFile, l.display, shortError(l.Scrub(err)))
	}
	l.lock, err = parseConfig(b, l.display)
	return err
}

// parseConfig reads ConfigFile's content and returns its lock (nil: none).
func parseConfig(b []byte, display string) (*Lock, error) {
	var c Config
	if len(b) > maxConfigFile || json.Unmarshal(b, &c) != nil || c.FormatVersion != 1 {
		return nil, fmt.Errorf("%s of %s is not a location config this kubectl-pvbackup reads (damaged, or written by a newer one): nothing is written to the location without its settings", ConfigFile, display)
	}
	if k := c.ObjectLock; k != nil {
		if (k.Mode != Compliance && k.Mode != Governance) || k.Period <= 0 {
			return nil, fmt.Errorf("%s of %s has an object lock of mode %q for %s, which is not one this kubectl-pvbackup writes", ConfigFile, display, k.Mode, k.Period)
		}
		return k, nil
	}
	return nil, nil
}

// lockOptions returns the options of a write into the location, with the location's object lock
// added when it has one.
func (l *Location) lockOptions(opts *blob.WriterOptions) *blob.WriterOptions {
	if l.lock == nil {
		return opts
	}
	return WithObjectLock(opts, l.lock.Mode, l.lock.Until(time.Now()))
}

// WithObjectLock returns opts with a BeforeWrite that gives the upload an S3 Object Lock of mode
// until until. gocloud's WriterOptions has no lock of its own; on a store whose upload is not an
// S3 one the write fails with ErrLockUnsupported rather than land unlocked.
func WithObjectLock(opts *blob.WriterOptions, mode string, until time.Time) *blob.WriterOptions {
	o := blob.WriterOptions{}
	if opts != nil {
		o = *opts
	}
	before := o.BeforeWrite
	o.BeforeWrite = func(as func(any) bool) error {
		if before != nil {
			if err := before(as); err != nil {
				return err
			}
		}
		var up *transfermanager.UploadObjectInput
		if as(&up) && up != nil {
			up.ObjectLockMode, up.ObjectLockRetainUntilDate = tmtypes.ObjectLockMode(mode), aws.Time(until)
			return nil
		}
		var put *s3.PutObjectInput
		if as(&put) && put != nil {
			put.ObjectLockMode, put.ObjectLockRetainUntilDate = s3types.ObjectLockMode(mode), aws.Time(until)
			return nil
		}
		return fmt.Errorf("this store's uploads take no S3 object lock: %w", ErrLockUnsupported)
	}
	return &o
}
