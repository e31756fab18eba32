package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kopia/kopia/repo"
	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/format"
	"github.com/kopia/kopia/repo/maintenance"
	"github.com/kopia/kopia/repo/splitter"
	"github.com/kopia/kopia/snapshot/policy"
	"gocloud.dev/blob"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Identity under which every mover and the plugin open the repositories; Kopia's maintenance
// owner is this identity, so maintenance (prune) can run from any of them.
const (
	ClientUser = "pvbackup"
	ClientHost = "pvbackup"
)

// DefaultSplitter, chosen by measurement (see docs/mover-image.md and the report of `make bench`):
// Kopia's default (content-defined chunks of ~4 MiB). Compression is a policy (compression.go),
// set per backup: it needs no format change.
const DefaultSplitter = "DYNAMIC-4M-BUZHASH"

// FormatKeyDerivation is how Kopia derives the key of a new repository's format blob from its
// password: PBKDF2 (600,000 rounds, ~0.15 s) rather than Kopia's default scrypt 2^16 (~0.3 s,
// 64 MiB), paid by every open of every mover and command. A slow derivation protects a password a
// person chose; ours is a random 256-bit key (internal/keyring), which no derivation makes any
// harder to guess. Kopia's only two choices; existing repositories keep theirs.
const FormatKeyDerivation = "pbkdf2-sha256-600000"

// Bounds of Kopia's local caches: they live in a temporary directory that Close removes.
const (
	defaultMetadataCacheBytes = 256 << 20
	metadataCacheLimitBytes   = 512 << 20
)

// ErrWrongPassword is returned (wrapped, naming the location) when the password does not open
// an existing repository.
var ErrWrongPassword = errors.New("wrong repository password")

// ErrNoRepository is returned (wrapped) by Open when the location holds no repository.
var ErrNoRepository = errors.New("no volume data repository")

// Config says how to open a repository.
type Config struct {
	Password string // required: there is no default
	// CacheDir is the parent of the temporary directory that holds Kopia's config and caches
	// ("" = os.TempDir()). The temporary directory is removed by Close.
	CacheDir string
	// ContentCacheBytes bounds Kopia's cache of data contents. 0 (the default) disables it: a
	// mover reads each content once, and with a cache a restore writes everything twice (measured:
	// 3× slower). Kopia then keeps no local cache at all, as `kopia cache set --content-cache-size-mb=0`.
	ContentCacheBytes int64
	// MetadataCacheBytes bounds the cache of directory listings and indexes when ContentCacheBytes
	// > 0 (0 = 256 MiB, hard limit 512 MiB).
	MetadataCacheBytes int64
	// Create, when the location has no repository, initialises one (backup); otherwise Open
	// fails with ErrNoRepository (restore).
	Create bool
	// Compression is the global compression policy of a repository created now ("" =
	// DefaultCompression); a backup sets its own (CompressionPolicy).
	Compression string
	// Splitter is the object splitter of a repository created now ("" = DefaultSplitter).
	Splitter string
	// Hash and Encryption are the content format of a repository created now ("" = DefaultHash,
	// DefaultEncryption). An existing repository keeps the format it was created with.
	Hash, Encryption string
	// S3Bucket and S3KeyPrefix, for an s3:// bucket, name the real bucket and the key prefix the
	// gocloud bucket adds, so puts can go straight to S3 (see Storage.UseS3PutObject).
	S3Bucket, S3KeyPrefix string
	// Limits bound the storage's upload and download bandwidth (zero: none).
	Limits Limits
	// Trace, when set, records every storage call with its HTTP timings (mover debug).
	Trace *Tracer
	// Clock, for simulations only, replaces the real clock for Kopia and for the timestamps of
	// the blobs this process writes (see Clock). nil = the real clock.
	Clock *Clock
	// Lock, for a repository created now in an immutable location, is its retention (lock.go).
	Lock *store.Lock
}

// Repository is an open Kopia repository in a bucket.
type Repository struct {
	repo.Repository
	display string
	dir     string
	release func()
	st      *Storage
}

// UploadedBytes is the number of bytes this process wrote to the repository's bucket.
func (r *Repository) UploadedBytes() int64 { return r.st.UploadedBytes() }

// NamespacePrefix is where the repository of a source namespace lives inside the location.
func NamespacePrefix(namespace string) (string, error) {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", fmt.Errorf("namespace %q: %s", namespace, strings.Join(errs, "; "))
	}
	return "kopia/" + namespace + "/", nil
}

// Location names the repository in messages (the redacted location URL and the prefix).
func (r *Repository) Location() string { return r.display }

// Open opens the Kopia repository in bucket (already narrowed to the repository prefix), creating
// it first when cfg.Create and the bucket holds none. display names it in errors, without secrets.
// The caller keeps owning bucket and closes it after Close.
func Open(ctx context.Context, bucket *blob.Bucket, display string, cfg Config) (_ *Repository, err error) {
	if cfg.Password == "" {
		return nil, fmt.Errorf("open repository %s: no password given (there is no default password)", display)
	}
	st, release, now := openStorage(bucket, display, cfg)
	dir, err := os.MkdirTemp(cfg.CacheDir, "pvbackup-kopia-")
	if err != nil {
		release()
		return nil, fmt.Errorf("open repository %s: create cache directory: %w", display, err)
	}
	defer func() {
		if err != nil {
			release()
			_ = os.RemoveAll(dir)
		}
	}()
	configFile := filepath.Join(dir, "repository.config")
	// Look for the repository first, then write Kopia's connection config ourselves: repo.Connect
	// would open the repository once to verify the config, doubling the cost of every mover start.
	created, err := findOrCreate(ctx, st, display, cfg)
	if err != nil {
		return nil, err
	}
	if err = writeConfig(configFile, st, connectOptions(dir, display, cfg)); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", display, err)
	}
	r, err := repo.Open(ctx, configFile, cfg.Password, &repo.Options{
		// Kopia's default exits the process; a mover must write its result first.
		OnFatalError: func(error) {},
		TimeNowFunc:  now,
	})
	if err != nil {
		return nil, classify(err, display)
	}
	out := &Repository{Repository: r, display: display, dir: dir, release: release, st: st}
	if err := out.lockEverything(ctx); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	if created {
		if err := out.setDefaults(ctx, cfg); err != nil {
			_ = r.Close(ctx)
			return nil, err
		}
	}
	return out, nil
}

// openStorage is the bucket as Kopia's storage, with what cfg adds: S3's PutObject, a trace,
// limits, a simulated clock (now is nil for Kopia's own).
func openStorage(bucket *blob.Bucket, display string, cfg Config) (st *Storage, release func(), now func() time.Time) {
	st, release = NewStorage(bucket, display)
	if cfg.S3Bucket != "" {
		st.UseS3PutObject(cfg.S3Bucket, cfg.S3KeyPrefix)
	}
	if cfg.Trace != nil {
		st.Trace(cfg.Trace)
	}
	if !cfg.Limits.zero() {
		st.Throttle(cfg.Limits)
	}
	if cfg.Clock != nil {
		st.SimulateTime(cfg.Clock)
		now = cfg.Clock.Now
	}
	return st, release, now
}

// findOrCreate looks for the repository's format blob and, when there is none, creates the
// repository if cfg allows (created: it did).
func findOrCreate(ctx context.Context, st *Storage, display string, cfg Config) (created bool, err error) {
	_, err = st.GetMetadata(ctx, format.KopiaRepositoryBlobID)
	switch {
	case errors.Is(err, kblob.ErrBlobNotFound):
		if !cfg.Create {
			return false, fmt.Errorf("%w at %s (nothing was backed up from there yet)", ErrNoRepository, display)
		}
		if err := initialize(ctx, st, cfg); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("open repository %s: %w", display, err)
	}
	return false, nil
}

// connectOptions are the client and cache options of a repository opened with its cache in dir.
func connectOptions(dir, display string, cfg Config) *repo.ConnectOptions {
	metaBytes := cfg.MetadataCacheBytes
	if metaBytes == 0 {
		metaBytes = defaultMetadataCacheBytes
	}
	return &repo.ConnectOptions{
		ClientOptions: repo.ClientOptions{Username: ClientUser, Hostname: ClientHost, Description: "kubectl-pvbackup " + display},
		CachingOptions: content.CachingOptions{
			CacheDirectory:              filepath.Join(dir, "cache"),
			ContentCacheSizeBytes:       cfg.ContentCacheBytes,
			ContentCacheSizeLimitBytes:  cfg.ContentCacheBytes,
			MetadataCacheSizeBytes:      metaBytes,
			MetadataCacheSizeLimitBytes: max(metaBytes, metadataCacheLimitBytes),
		},
	}
}

// writeConfig writes what repo.Connect would: storage, caching and client options.
func writeConfig(path string, st *Storage, opts *repo.ConnectOptions) error {
	ci := st.ConnectionInfo()
	caching := opts.CachingOptions
	if caching.ContentCacheSizeBytes == 0 {
		caching = content.CachingOptions{} // as Kopia does: no content cache means no local cache at all
	}
	b, err := json.MarshalIndent(&repo.LocalConfig{Storage: &ci, Caching: &caching, ClientOptions: opts.ClientOptions}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func initialize(ctx context.Context, st *Storage, cfg Config) error {
	sp := cfg.Splitter
	if sp == "" {
		sp = DefaultSplitter
	}
	if splitter.GetFactory(sp) == nil {
		return fmt.Errorf("create repository %s: unknown splitter %q (use one of %s)", st.DisplayName(), sp, strings.Join(splitter.SupportedAlgorithms(), ", "))
	}
	if err := ValidateCompression(cfg.Compression); err != nil {
		return fmt.Errorf("create repository %s: %w", st.DisplayName(), err)
	}
	cf, err := contentFormat(cfg)
	if err != nil {
		return fmt.Errorf("create repository %s: %w", st.DisplayName(), err)
	}
	opts := &repo.NewRepositoryOptions{
		BlockFormat:                       cf,
		ObjectFormat:                      format.ObjectFormat{Splitter: sp},
		FormatBlockKeyDerivationAlgorithm: FormatKeyDerivation,
	}
	if cfg.Lock != nil {
		p := maintenance.DefaultParams()
		if err := checkLockedMaintenance(ctx, cfg.Lock, &p); err != nil {
			return fmt.Errorf("create repository %s: %w", st.DisplayName(), err)
		}
		opts.RetentionMode, opts.RetentionPeriod = kblob.RetentionMode(cfg.Lock.Mode), cfg.Lock.Period
	}
	err = repo.Initialize(ctx, st, opts, cfg.Password)
	if errors.Is(err, repo.ErrAlreadyInitialized) {
		return nil // another mover created it a moment ago
	}
	if err != nil {
		return fmt.Errorf("create repository %s: %w", st.DisplayName(), err)
	}
	return nil
}

// setDefaults writes what `kopia repository create` writes: the global policy (with our
// compression) and the maintenance owner.
func (r *Repository) setDefaults(ctx context.Context, cfg Config) error {
	comp, err := CompressionPolicy(cfg.Compression)
	if err != nil {
		return fmt.Errorf("set global policy in %s: %w", r.display, err)
	}
	return repo.WriteSession(ctx, r.Repository, repo.WriteSessionOptions{Purpose: "pvbackup: repository defaults"},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			pol := *policy.DefaultPolicy
			pol.CompressionPolicy = comp
			if err := policy.SetPolicy(ctx, w, policy.GlobalPolicySourceInfo, &pol); err != nil {
				return fmt.Errorf("set global policy in %s: %w", r.display, err)
			}
			p := maintenance.DefaultParams()
			p.Owner = ClientUser + "@" + ClientHost
			// Full maintenance extends the locks of a locked repository's live blobs.
			p.ExtendObjectLocks = cfg.Lock != nil
			if err := maintenance.SetParams(ctx, w, &p); err != nil {
				return fmt.Errorf("set maintenance owner in %s: %w", r.display, err)
			}
			return nil
		})
}

// Close closes the repository and removes its local config and caches.
func (r *Repository) Close(ctx context.Context) error {
	err := r.Repository.Close(ctx)
	r.release()
	if rerr := os.RemoveAll(r.dir); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("close repository %s: %w", r.display, err)
	}
	return nil
}

func classify(err error, display string) error {
	if errors.Is(err, repo.ErrInvalidPassword) {
		return fmt.Errorf("%w for %s (the repository exists and was created with another password; pass the password it was created with via PVBACKUP_PASSWORD or --password-file)", ErrWrongPassword, display)
	}
	return fmt.Errorf("open repository %s: %w", display, err)
}
