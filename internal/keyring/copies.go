package keyring

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// CopyFile is the copy of the wrapped location key kept in each backup's directory
// (backups/<name>/location.age): deleting or emptying KeyFile, one ~250-byte object, would
// otherwise make every backup unrecoverable, even with the password. A copy is KeyFile as it was
// when the backup was made (rewrapped by `repo change-password`): it opens with the password
// like KeyFile, and gives a bucket writer nothing KeyFile does not.
const CopyFile = catalog.KeyCopyFile

// maxCopies bounds the distinct copies tried (each is one Argon2id): copies are identical but
// for a change of password that stopped half way, or copies a bucket writer planted.
const maxCopies = 4

// ErrDamaged is returned (wrapped, with Keyring.Damage's text) by commands that report the key's
// state: KeyFile is missing or damaged and a copy opened the location.
var ErrDamaged = errors.New("the location's key file is missing or damaged")

// ErrKeyDeleted is returned (wrapped) for a location whose backups were made with a location key
// but which holds neither KeyFile nor a copy that opens.
var ErrKeyDeleted = errors.New("the location's key file was deleted")

// CopyKey is the bucket key of backup name's copy of the location key.
func CopyKey(name string) string { return catalog.Key(name, CopyFile) }

// Wrapped returns the key file the keyring was opened from, as stored: what an export holds.
func (k *Keyring) Wrapped() []byte { return append([]byte(nil), k.wrapped...) }

// SaveCopy keeps a copy of the wrapped key with backup name (written once: the backup's claim
// keeps other runs away from its directory).
func (k *Keyring) SaveCopy(ctx context.Context, loc *store.Location, name string) error {
	err := loc.WriteNew(ctx, CopyKey(name), k.wrapped, "application/octet-stream")
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("keep a copy of the location key with backup %q in %s: %w", name, loc, err)
	}
	return nil
}

// openDamaged opens the location from a copy when KeyFile could not be read or unwrapped
// (keyErr). A missing KeyFile without copies is a location without a key (ErrNoKey), one of
// development builds (ErrOldFormat), or one whose key file was deleted (ErrKeyDeleted).
func openDamaged(ctx context.Context, loc *store.Location, password string, keyErr error) (*Keyring, error) {
	k, from, err := openCopy(ctx, loc, password)
	if err == nil {
		state := "is missing"
		if !errors.Is(keyErr, errNotFound) {
			state = "is damaged (" + keyErr.Error() + ")"
		}
		k.Damage = fmt.Sprintf("%s of %s %s; the location was opened with the copy kept in %s", KeyFile, loc, state, from)
		return k, nil
	}
	if errors.Is(err, ErrWrongPassword) {
		return nil, fmt.Errorf("%w for %s: %s cannot be read and the password does not unwrap the copies kept with the backups (%s)", ErrWrongPassword, loc, KeyFile, keyErr)
	}
	if !errors.Is(err, errNotFound) {
		return nil, err
	}
	if !errors.Is(keyErr, errNotFound) {
		return nil, fmt.Errorf("%w, and no backup holds a copy of it: import your export with `kubectl pvbackup repo import-key FILE`", keyErr)
	}
	return nil, noKey(ctx, loc)
}

// noKey says why a location without a key file and without copies has no key.
func noKey(ctx context.Context, loc *store.Location) error {
	if old, err := holdsData(ctx, loc); err != nil {
		return err
	} else if !old {
		return fmt.Errorf("%s has no %s: it holds no backup yet (a first `kubectl pvbackup create` makes the key): %w", loc, KeyFile, ErrNoKey)
	}
	newer := false
	errStop := errors.New("stop")
	err := catalog.New(loc).EachSummary(ctx, func(e catalog.Entry) error {
		if e.Manifest != nil && e.Manifest.FormatVersion >= catalog.FormatLocationKey {
			newer = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if newer {
		return fmt.Errorf("%s holds backups made with a location key, but %s is gone and no backup holds a copy of it: import your export with `kubectl pvbackup repo import-key FILE` (without it, and without a copy, the backups cannot be opened): %w", loc, KeyFile, ErrKeyDeleted)
	}
	return oldFormat(loc)
}

// openCopy unwraps the first copy that opens with password, trying at most maxCopies distinct
// ones: errNotFound when there is none, ErrWrongPassword when none opens.
func openCopy(ctx context.Context, loc *store.Location, password string) (*Keyring, string, error) {
	keys, err := copies(ctx, loc)
	if err != nil {
		return nil, "", err
	}
	tried := map[[32]byte]bool{}
	wrong := false
	for _, key := range keys {
		data, err := readKeyFile(ctx, loc, key)
		if err != nil {
			continue // deleted since listed, or not a key file
		}
		h := sha256.Sum256(data)
		if tried[h] {
			continue
		}
		if len(tried) == maxCopies {
			break
		}
		tried[h] = true
		k, err := unwrap(data, password)
		if err == nil {
			return &Keyring{key: k, wrapped: data}, key, nil
		}
		wrong = wrong || errors.Is(err, ErrWrongPassword)
	}
	if wrong {
		return nil, "", ErrWrongPassword
	}
	return nil, "", errNotFound
}

// copies lists the copies of the location key kept with the backups, in name order.
func copies(ctx context.Context, loc *store.Location) ([]string, error) {
	var out []string
	it := loc.Bucket().List(&blob.ListOptions{Prefix: "backups/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list the backups of %s: %w", loc, loc.Scrub(err))
		}
		if strings.HasSuffix(obj.Key, "/"+CopyFile) && strings.Count(obj.Key, "/") == 2 {
			out = append(out, obj.Key)
		}
	}
}

// rewrapCopies replaces every copy with data (the key wrapped by a new password).
func rewrapCopies(ctx context.Context, loc *store.Location, data []byte) error {
	keys, err := copies(ctx, loc)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := loc.Write(ctx, key, data, "application/octet-stream"); err != nil {
			return fmt.Errorf("rewrap the copy of the key %s in %s: %w", key, loc, err)
		}
	}
	return nil
}

// Repair writes KeyFile back from the copy the keyring was opened with, when KeyFile is missing
// (a damaged one is left in place: `repo import-key` replaces it). It reports whether it wrote.
func (k *Keyring) Repair(ctx context.Context, loc *store.Location) (bool, error) {
	if k.Damage == "" {
		return false, nil
	}
	err := loc.WriteNew(ctx, KeyFile, k.wrapped, "application/octet-stream")
	if errors.Is(err, store.ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write %s back to %s: %w", KeyFile, loc, err)
	}
	return true, nil
}

// Import puts an exported key file (data, the wrapped key as `repo export-key` wrote it) in place
// as KeyFile. It must unwrap with password; a location whose key file (or a copy) opens with the
// password must hold the same key, or nothing is changed. A damaged KeyFile is replaced only if it
// is still what was read.
func Import(ctx context.Context, loc *store.Location, password string, data []byte) (replaced bool, err error) {
	if len(data) > maxKeyFile {
		return false, fmt.Errorf("the export is larger than %d bytes: it is not a key file", maxKeyFile)
	}
	key, err := unwrap(data, password)
	if err != nil {
		return false, fmt.Errorf("the export does not open with the password: %w", err)
	}
	cur, err := Open(ctx, loc, password)
	switch {
	case err == nil && string(cur.key) != string(key):
		return false, fmt.Errorf("the export holds another key than %s's %s: was it exported from another location?", loc, KeyFile)
	case err == nil && cur.Damage == "":
		return false, nil // in place already
	case errors.Is(err, ErrWrongPassword):
		return false, err
	}
	// Missing or damaged (with or without copies): the export goes in its place.
	_, version, rerr := loc.ReadVersion(ctx, KeyFile, maxKeyFile)
	if rerr != nil {
		if !store.IsNotFound(rerr) {
			return false, fmt.Errorf("read %s of %s: %w", KeyFile, loc, rerr)
		}
		if err := loc.WriteNew(ctx, KeyFile, data, "application/octet-stream"); err != nil {
			return false, fmt.Errorf("write %s to %s: %w", KeyFile, loc, err)
		}
		return true, nil
	}
	if err := loc.ReplaceIf(ctx, KeyFile, data, version); err != nil {
		return false, fmt.Errorf("replace the damaged %s of %s: %w", KeyFile, loc, err)
	}
	return true, nil
}
