package copier

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// maxKeyFile bounds what is read of the source's key file (a real one is ~250 bytes).
const maxKeyFile = 16 << 10

// ErrOtherKey is returned (wrapped) when the second location has a key of its own.
var ErrOtherKey = errors.New("the second location has another location key")

// sameKey makes the second location share the first's location key: a copy is the first
// location's blobs and files byte for byte, encrypted with keys derived from that key, so the
// second location must unwrap the same one. A second location without a key gets the first's key
// file as it is (wrapped by the same password); one that already has the same key is fine; one
// with another key (or another password) is refused.
func sameKey(ctx context.Context, from, to *store.Location, password string) error {
	src, err := keyring.Open(ctx, from, password)
	if err != nil {
		return err
	}
	dst, err := keyring.Open(ctx, to, password)
	switch {
	case err == nil:
		if !dst.SameKey(src) {
			return fmt.Errorf("%s: %w (made by another first backup); a copy needs the same one: copy into a new location or prefix", to, ErrOtherKey)
		}
		return nil
	case errors.Is(err, keyring.ErrWrongPassword):
		return fmt.Errorf("%s has a key that the password does not unwrap: %w; a copy needs the same key: copy into a new location or prefix", to, ErrOtherKey)
	case !errors.Is(err, keyring.ErrNoKey):
		return err
	}
	r, err := from.Bucket().NewReader(ctx, keyring.KeyFile, nil)
	if err != nil {
		return fmt.Errorf("read %s of %s: %w", keyring.KeyFile, from, from.Scrub(err))
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil || len(data) > maxKeyFile {
		return fmt.Errorf("read %s of %s: %v (more than %d bytes is not a key file)", keyring.KeyFile, from, err, maxKeyFile)
	}
	if err := to.WriteNew(ctx, keyring.KeyFile, data, "application/octet-stream"); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("write %s to %s: %w", keyring.KeyFile, to, err)
	}
	// Written, or another copy wrote it a moment ago: it must be the same key now.
	return sameKeyWritten(ctx, to, src, password)
}

func sameKeyWritten(ctx context.Context, to *store.Location, src *keyring.Keyring, password string) error {
	dst, err := keyring.Open(ctx, to, password)
	if err != nil {
		return err
	}
	if !dst.SameKey(src) {
		return fmt.Errorf("%s: %w (written by another run a moment ago)", to, ErrOtherKey)
	}
	return nil
}
