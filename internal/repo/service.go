package repo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// CloseTimeout bounds closing a repository (flushing its indexes) after its caller's context
// ended: a Ctrl-C still leaves a repository whose writes are complete.
const CloseTimeout = 30 * time.Second

// Tag keys on every snapshot a mover saves (Kopia's "tag:" convention, so `kopia snapshot list`
// shows them): delete checks them before it deletes a snapshot a backup lists.
const (
	TagBackup    = "tag:backup"
	TagNamespace = "tag:namespace"
	TagPVC       = "tag:pvc"
)

// Service opens the Kopia repositories of one backup location: the repository of source
// namespace ns is at <prefix>/kopia/<ns>/ and opens with the key Key gives for ns. It is the one
// way volume data is reached, by the mover in its pod and by the plugin's engines (ls, cat, cp,
// verify, delete, prune, repo, doctor, create's first open); storage credentials come from the
// environment the gocloud drivers read.
type Service struct {
	Location string                                 // backup location URL (gocloud), its prefix included
	Key      func(namespace string) (string, error) // the namespace's repository password
	// CacheDir is the parent of Kopia's temporary cache directory ("" = $TMPDIR).
	CacheDir string
	// Compression is the global policy of a repository Ensure creates ("" = none).
	Compression string
	// Limits bound the storage's upload and download bandwidth (zero: none).
	Limits Limits
	// Trace, when set, records every storage call (mover debug).
	Trace *Tracer
	// Clock, for simulations only (hack/bench-repo), runs the repositories on simulated time.
	Clock *Clock
	// Lock, in an immutable location, is the retention of the repositories Ensure creates.
	Lock *store.Lock
}

// OneKey is a Key that gives every namespace the same password (a mover, which opens only its
// own namespace's repository, or a test).
func OneKey(password string) func(string) (string, error) {
	return func(string) (string, error) { return password, nil }
}

// Open opens the namespace's existing repository (ErrNoRepository when there is none), for
// reading and writing. Kopia's content cache is off: data is read once and never written
// locally. closeFn closes the repository and the bucket, within CloseTimeout.
func (s *Service) Open(ctx context.Context, namespace string) (_ *Repository, closeFn func(), err error) {
	return s.open(ctx, namespace, modeOpen)
}

// OpenOrCreate opens the namespace's repository, creating it on first use (a mover's backup).
func (s *Service) OpenOrCreate(ctx context.Context, namespace string) (_ *Repository, closeFn func(), err error) {
	return s.open(ctx, namespace, modeCreate)
}

// OpenReadOnly opens the namespace's existing repository for reading only: every write, delete
// or retention change is refused at the storage layer (ReadOnlyStorage), and Kopia writes no
// log, cache or maintenance blob. For commands that only read (ls, cat, cp, verify) and for
// repositories another tool owns.
func (s *Service) OpenReadOnly(ctx context.Context, namespace string) (_ *Repository, closeFn func(), err error) {
	return s.open(ctx, namespace, modeReadOnly)
}

// Check opens the namespace's existing repository and closes it again: ErrWrongPassword when the
// key does not open it, ErrNoRepository when there is none (doctor).
func (s *Service) Check(ctx context.Context, namespace string) error {
	_, closeFn, err := s.open(ctx, namespace, modeOpen)
	if err != nil {
		return err
	}
	closeFn()
	return nil
}

// Ensure creates the namespace's repository when there is none. The plugin calls it once per
// namespace before it starts movers in parallel: two movers creating the same new repository at
// once would race (the loser cannot read the other's format blob).
func (s *Service) Ensure(ctx context.Context, namespace string) error {
	_, closeFn, err := s.open(ctx, namespace, modeCreate)
	if err != nil {
		return err
	}
	closeFn()
	return nil
}

type openMode int

const (
	modeOpen openMode = iota
	modeCreate
	modeReadOnly
)

func (s *Service) open(ctx context.Context, namespace string, mode openMode) (_ *Repository, closeFn func(), err error) {
	prefix, err := NamespacePrefix(namespace)
	if err != nil {
		return nil, nil, err
	}
	password, err := s.Key(namespace)
	if err != nil {
		return nil, nil, err
	}
	// Opened at the repository's own prefix, so that even the reachability probe lists nothing
	// outside <prefix>/kopia/<ns>/: a mover needs no permission on the rest of the bucket
	// (docs/security.md has the bucket policy).
	loc, err := store.Open(ctx, store.WithPrefix(fileWithoutSidecars(s.Location), prefix))
	if err != nil {
		return nil, nil, err
	}
	bucket := loc.Bucket()
	display := store.Redact(s.Location) + " (" + prefix + ")"
	var r *Repository
	if mode == modeReadOnly {
		r, err = OpenReadOnly(ctx, bucket, display, password, s.CacheDir)
		if errors.Is(err, ErrNoRepository) { // as Open says it
			err = fmt.Errorf("%w at %s (nothing was backed up from there yet)", ErrNoRepository, display)
		}
	} else {
		r, err = Open(ctx, bucket, display, s.config(password, prefix, mode == modeCreate))
	}
	if err != nil {
		_ = bucket.Close()
		return nil, nil, err
	}
	return r, func() {
		cctx, cancel := cleanup.Context(ctx, CloseTimeout)
		defer cancel()
		_ = r.Close(cctx)
		_ = bucket.Close()
	}, nil
}

func (s *Service) config(password, prefix string, create bool) Config {
	cfg := Config{
		Password:    password,
		CacheDir:    s.CacheDir,
		Create:      create,
		Compression: s.Compression,
		Limits:      s.Limits,
		Trace:       s.Trace,
		Clock:       s.Clock,
		Lock:        s.Lock,
	}
	if bucketURL, locPrefix, err := store.Parse(s.Location); err == nil {
		if u, err := url.Parse(bucketURL); err == nil && u.Scheme == "s3" {
			cfg.S3Bucket, cfg.S3KeyPrefix = u.Host, locPrefix+prefix
		}
	}
	return cfg
}

// fileWithoutSidecars turns off fileblob's attribute sidecars for a file:// location: with them
// every blob write also MD5s the data and writes a second file, which made backups to a
// filesystem 60% slower than the kopia CLI's; Kopia needs neither content types nor MD5s.
func fileWithoutSidecars(location string) string {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "file" || u.Query().Has("metadata") {
		return location
	}
	q := u.Query()
	q.Set("metadata", "skip")
	u.RawQuery = q.Encode()
	return u.String()
}
