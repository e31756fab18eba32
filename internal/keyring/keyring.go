// Package keyring holds the keys of a backup location. The password never opens anything
// directly: it unwraps a random 256-bit location key stored in the bucket, and every secret the
// plugin uses is derived from that key on the user's machine:
//
//	keys/location.age       the location key, encrypted with age under the password (Argon2id;
//	                        scrypt in key files written before, which still open)
//	keys/location.next.age  only while `repo change-password` runs: the same key under the new password
//
//	RepoPassword(ns) = HKDF-SHA256(location key, info "kubectl-pvbackup/kopia/<ns>")  (Kopia's password of kopia/<ns>/)
//	ArchiveKey()     = HKDF-SHA256(location key, info "kubectl-pvbackup/archive")     (resources archives)
//
// A mover in namespace A gets only RepoPassword(A): HKDF outputs are independent, so it opens
// neither another namespace's repository nor any archive. Changing the password rewraps one object
// and re-encrypts nothing.
package keyring

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Keys of the wrapped location key, relative to the location's prefix.
const (
	KeyFile  = "keys/location.age"
	NextFile = "keys/location.next.age"
)

// Scheme names how secrets are derived; backup.json records it (with its format version).
const Scheme = "location-key/hkdf-sha256"

// MaxWorkFactor caps the scrypt cost accepted on read of a key file written before Argon2id
// (age's scrypt stanza, 2^18): a bucket writer could raise the factor in the header to make every
// command spend minutes and gigabytes before failing.
const MaxWorkFactor = 20

// maxKeyFile bounds what is read of a key object (a real one is ~250 bytes).
const maxKeyFile = 16 << 10

const keyLen = 32

// Errors a caller decides on (they are returned wrapped, with the location and what to do).
var (
	ErrWrongPassword = errors.New("wrong repository password")
	ErrNoKey         = errors.New("location has no key")
	ErrOldFormat     = errors.New("location was written before per-namespace keys")
)

// Keyring is a location's unwrapped key. It is never written anywhere in clear.
type Keyring struct {
	key []byte
	// wrapped is the key file it was unwrapped from, as stored (what a copy and an export hold).
	wrapped []byte
	// Damage, when set, says that KeyFile is missing or damaged and which copy opened instead.
	Damage string
}

// payload is what the age file holds.
type payload struct {
	Scheme string `json:"scheme"`
	Key    []byte `json:"key"` // base64 in JSON
}

// RepoPassword is the Kopia password of the namespace's repository (kopia/<ns>/).
func (k *Keyring) RepoPassword(namespace string) (string, error) {
	return k.derive("kubectl-pvbackup/kopia/" + namespace)
}

// ArchiveKey is the passphrase of the resources archives.
func (k *Keyring) ArchiveKey() (string, error) { return k.derive("kubectl-pvbackup/archive") }

// SameKey reports whether o holds the same location key as k (every secret derived from them
// is then the same).
func (k *Keyring) SameKey(o *Keyring) bool { return bytes.Equal(k.key, o.key) }

// derive is the secret of info. HKDF refuses only lengths beyond 255*32 bytes (and, in FIPS 140
// only mode, keys shorter than 112 bits): neither happens with this package's keys.
func (k *Keyring) derive(info string) (string, error) {
	out, err := hkdf.Key(sha256.New, k.key, nil, info, keyLen)
	if err != nil {
		return "", fmt.Errorf("derive %q from the location key: %w", info, err)
	}
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open unwraps the location's key with password. A location without a key file is ErrNoKey
// (wrapped, saying whether it holds backups of the earlier format).
func Open(ctx context.Context, loc *store.Location, password string) (*Keyring, error) {
	if password == "" {
		return nil, fmt.Errorf("open the key of %s: no password given (there is no default password)", loc)
	}
	key, data, err := unwrapFile(ctx, loc, KeyFile, password)
	if err == nil {
		return &Keyring{key: key, wrapped: data}, nil
	}
	if !errors.Is(err, ErrWrongPassword) && !errors.Is(err, errUnknownWrap) {
		// Missing, emptied or damaged: the copies kept with the backups open the location.
		return openDamaged(ctx, loc, password, err)
	}
	if !errors.Is(err, ErrWrongPassword) {
		return nil, err
	}
	if err != ErrWrongPassword { // it says more (an unusual cost): say it
		return nil, fmt.Errorf("the password does not unwrap the key of %s (%s): %w", loc, KeyFile, err)
	}
	// A `repo change-password` that stopped before it switched the key file left the key
	// wrapped by the new password beside it: the new password opens too.
	if key, data, nerr := unwrapFile(ctx, loc, NextFile, password); nerr == nil {
		return &Keyring{key: key, wrapped: data}, nil
	} else if !errors.Is(nerr, errNotFound) && !errors.Is(nerr, ErrWrongPassword) {
		return nil, nerr
	}
	return nil, fmt.Errorf("%w for %s: the password does not unwrap its key (%s); pass the password the location was created with, or last set by `kubectl pvbackup repo change-password`, via PVBACKUP_PASSWORD or --password-file", ErrWrongPassword, loc, KeyFile)
}

// Create opens the location's key, making one on the location's first use. It never makes a
// new key when one exists (a wrong password is ErrWrongPassword), nor for a location that holds
// backups without a key. Two first uses at once both end up with the one key written first.
func Create(ctx context.Context, loc *store.Location, password string) (*Keyring, error) {
	k, err := Open(ctx, loc, password)
	if !errors.Is(err, ErrNoKey) {
		return k, err
	}
	// The first use of a location: a store that ignores If-None-Match would let two first
	// backups at once each make a key (one's backups then open with none), so it is refused.
	// (Other failures of the probe are left to the key's own write below, which names them.)
	if err := store.CheckConditional(ctx, loc); errors.Is(err, store.ErrNoConditionalWrites) {
		return nil, fmt.Errorf("make the key of %s: %w (use a store that supports conditional writes: AWS S3, GCS, Azure, MinIO, SeaweedFS, file://)", loc, err)
	}
	key := make([]byte, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make the key of %s: %w", loc, err)
	}
	data, err := wrap(key, password)
	if err != nil {
		return nil, fmt.Errorf("make the key of %s: %w", loc, err)
	}
	// store.WriteNew: one step two writers cannot both pass, also on file:// (gocloud's fileblob
	// checks and renames, so two first creates could both write and one use a key that lost).
	err = loc.WriteNew(ctx, KeyFile, data, "application/octet-stream")
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("write the key of %s (%s): %w", loc, KeyFile, err)
	}
	// Written or lost the race: read back what the bucket holds, and use that. (A store that
	// ignored If-None-Match let the last writer win; the read shows which.) Our own bytes need
	// no second scrypt.
	if err == nil {
		back, rerr := loc.Bucket().ReadAll(ctx, KeyFile)
		if rerr == nil && bytes.Equal(back, data) {
			return &Keyring{key: key, wrapped: data}, nil
		}
	}
	return Open(ctx, loc, password)
}

// errUnknownWrap marks a key file wrapped in a way this build does not know: not damage.
var errUnknownWrap = errors.New("unknown wrapping")

var errNotFound = errors.New("not found")

// unwrapFile reads one key object and unwraps it; it returns the key and the object as read.
func unwrapFile(ctx context.Context, loc *store.Location, file, password string) ([]byte, []byte, error) {
	data, err := readKeyFile(ctx, loc, file)
	if err != nil {
		return nil, nil, err
	}
	key, err := unwrap(data, password)
	if err != nil {
		if errors.Is(err, ErrWrongPassword) || errors.Is(err, errUnknownWrap) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("the key of %s (%s) is damaged: %w", loc, file, err)
	}
	return key, data, nil
}

// readKeyFile reads a key object, at most maxKeyFile bytes (errNotFound when it is missing).
func readKeyFile(ctx context.Context, loc *store.Location, file string) ([]byte, error) {
	r, err := loc.Bucket().NewReader(ctx, file, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("read the key of %s (%s): %w", loc, file, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the key of %s (%s): %w", loc, file, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("the key of %s (%s) is larger than %d bytes: it is not a key file (was it replaced?)", loc, file, maxKeyFile)
	}
	return data, nil
}

func wrap(key []byte, password string) ([]byte, error) {
	r := &argon2Recipient{password: []byte(password), cost: cost}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(w).Encode(payload{Scheme: Scheme, Key: key}); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func unwrap(data []byte, password string) ([]byte, error) {
	old, err := age.NewScryptIdentity(password)
	if err != nil {
		return nil, err
	}
	old.SetMaxWorkFactor(MaxWorkFactor)
	id := &argon2Identity{password: []byte(password)}
	r, err := age.Decrypt(bytes.NewReader(data), id, old)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			if t := id.unknown(); t != "" {
				return nil, fmt.Errorf("wrapped with %q, which this kubectl-pvbackup does not know (written by a newer one? upgrade the plugin): %w", t, errUnknownWrap)
			}
			if c := id.unusualCost(); c != "" {
				return nil, fmt.Errorf("%w, or an unusual key-derivation cost (%s; this plugin writes %s): was the key file modified?", ErrWrongPassword, c, cost)
			}
			return nil, ErrWrongPassword
		}
		return nil, err
	}
	var p payload
	if err := json.NewDecoder(io.LimitReader(r, maxKeyFile)).Decode(&p); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if p.Scheme != Scheme || len(p.Key) != keyLen {
		return nil, fmt.Errorf("scheme %q with a %d-byte key; this kubectl-pvbackup knows %q with %d bytes (upgrade the plugin?)", p.Scheme, len(p.Key), Scheme, keyLen)
	}
	return p.Key, nil
}

// holdsData reports whether the location has backups or repositories: a location without a key
// file but with those was written by a build before this scheme, or its key file was deleted;
// either way a new key would open none of it.
func holdsData(ctx context.Context, loc *store.Location) (bool, error) {
	for _, prefix := range []string{"backups/", "kopia/"} {
		it := loc.Bucket().List(&blob.ListOptions{Prefix: prefix})
		_, err := it.Next(ctx)
		if err == io.EOF {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("list %s in %s: %w", prefix, loc, err)
		}
		return true, nil
	}
	return false, nil
}

func oldFormat(loc *store.Location) error {
	return fmt.Errorf("%s holds backups but no %s: they were made by a development build before per-namespace keys (format 1; v0.1.0 was never released). This build cannot open them: restore them with the build that made them, and back up again to a new location or prefix: %w", loc, KeyFile, ErrOldFormat)
}
