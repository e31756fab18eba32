package mover

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Settings are what every mover run needs besides the operation: where the repository is and
// how to open it. Storage credentials come from the environment the gocloud drivers read
// (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_KEY, ...).
type Settings struct {
	Location    string // backup location URL (gocloud), its prefix included
	Namespace   string // source namespace: selects <prefix>/kopia/<namespace>/
	Password    string
	CacheDir    string // parent of Kopia's temporary cache directory ("" = $TMPDIR)
	Compression string // for a repository created by this run
	// Debug keeps the storage calls' timings (HTTP level) in the Result: those of opening the
	// repository and any slower than DebugSlowCall.
	Debug bool
	// Clock, for simulations only (hack/bench-repo), runs the repository on simulated time (see
	// repo.Clock). Not part of the mover's contract: a mover pod always runs on the real clock.
	Clock *repo.Clock
	// Lock, for a repository created by this run in an immutable location, is its retention.
	// The plugin creates repositories (EnsureRepository); not part of the mover's contract.
	Lock *store.Lock
}

// DebugSlowCall is how slow a storage call after the open must be to be listed in Result.Debug.
const DebugSlowCall = time.Second

// maxDebugLines bounds Result.Debug, which must fit the termination message with the rest.
const maxDebugLines = 16

// openRepo opens the location and the namespace's repository. close releases both.
func openRepo(ctx context.Context, s Settings, create bool) (_ *repo.Repository, closeFn func(), err error) {
	return openRepoTraced(ctx, s, create, nil)
}

func openRepoTraced(ctx context.Context, s Settings, create bool, trace *repo.Tracer) (_ *repo.Repository, closeFn func(), err error) {
	prefix, err := repo.NamespacePrefix(s.Namespace)
	if err != nil {
		return nil, nil, err
	}
	// Opened at the repository's own prefix, so that even the reachability probe lists nothing
	// outside <prefix>/kopia/<ns>/: a mover needs no permission on the rest of the bucket
	// (docs/security.md has the bucket policy).
	loc, err := store.Open(ctx, withPrefix(fileWithoutSidecars(s.Location), prefix))
	if err != nil {
		return nil, nil, err
	}
	bucket := loc.Bucket()
	display := store.Redact(s.Location) + " (" + prefix + ")"
	cfg := repo.Config{
		Password:    s.Password,
		CacheDir:    s.CacheDir,
		Create:      create,
		Compression: s.Compression,
		Trace:       trace,
		Clock:       s.Clock,
		Lock:        s.Lock,
	}
	if bucketURL, locPrefix, err := store.Parse(s.Location); err == nil {
		if u, err := url.Parse(bucketURL); err == nil && u.Scheme == "s3" {
			cfg.S3Bucket, cfg.S3KeyPrefix = u.Host, locPrefix+prefix
		}
	}
	r, err := repo.Open(ctx, bucket, display, cfg)
	if err != nil {
		_ = bucket.Close()
		return nil, nil, err
	}
	return r, func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.Close(cctx)
		_ = bucket.Close()
	}, nil
}

// RunBackup opens (creating on first use) the namespace's repository and backs up cfg.Source.
// The Result is always returned, with Error set when err != nil, and also sent as the last event.
func RunBackup(ctx context.Context, s Settings, cfg BackupConfig, sink Sink) (*Result, error) {
	start := time.Now()
	cfg.Namespace = s.Namespace
	if err := cfg.validate(); err != nil {
		return finish(sink, failed(OpBackup, start, err), err)
	}
	trace := newTrace(s)
	r, closeRepo, err := openRepoTraced(ctx, s, true, trace.tracer())
	opened := time.Since(start)
	if err != nil {
		return finish(sink, trace.into(failed(OpBackup, start, err), opened), err)
	}
	defer closeRepo()
	res, err := Backup(ctx, r, cfg, sink)
	res.DurationSeconds = time.Since(start).Seconds()
	return finish(sink, trace.into(res, opened), err)
}

// RunRestore opens the namespace's repository (it must exist) and restores the snapshot, or
// restores cfg.FromDir without opening any.
func RunRestore(ctx context.Context, s Settings, cfg RestoreConfig, sink Sink) (*Result, error) {
	start := time.Now()
	if err := cfg.validate(); err != nil {
		return finish(sink, failed(OpRestore, start, err), err)
	}
	if cfg.FromDir != "" { // a volume made from a kept VolumeSnapshot: no repository involved
		res, err := Restore(ctx, nil, cfg, sink)
		return finish(sink, res, err)
	}
	trace := newTrace(s)
	r, closeRepo, err := openRepoTraced(ctx, s, false, trace.tracer())
	opened := time.Since(start)
	if err != nil {
		return finish(sink, trace.into(failed(OpRestore, start, err), opened), err)
	}
	defer closeRepo()
	res, err := Restore(ctx, r, cfg, sink)
	res.DurationSeconds = time.Since(start).Seconds()
	return finish(sink, trace.into(res, opened), err)
}

// runTrace is a mover run's storage trace (nil unless Settings.Debug).
type runTrace struct{ t *repo.Tracer }

func newTrace(s Settings) *runTrace {
	if !s.Debug {
		return nil
	}
	return &runTrace{t: repo.NewTracer()}
}

func (rt *runTrace) tracer() *repo.Tracer {
	if rt == nil {
		return nil
	}
	return rt.t
}

// into records the open time in res and, when tracing, the calls made while opening and the
// slow ones after it.
func (rt *runTrace) into(res *Result, opened time.Duration) *Result {
	res.OpenSeconds = opened.Seconds()
	if rt == nil {
		return res
	}
	for _, c := range rt.t.Calls() {
		if len(res.Debug) == maxDebugLines {
			res.Debug = append(res.Debug, "... (more calls left out)")
			break
		}
		if c.Start < opened || c.Duration >= DebugSlowCall {
			res.Debug = append(res.Debug, c.String())
		}
	}
	return res
}

func failed(op string, start time.Time, err error) *Result {
	return &Result{Op: op, Error: oneLine(err.Error()), DurationSeconds: time.Since(start).Seconds()}
}

func finish(sink Sink, res *Result, err error) (*Result, error) {
	if err != nil && res.Error == "" {
		res.Error = oneLine(err.Error())
	}
	res.OK = err == nil
	sink(Event{Time: time.Now().UTC(), Event: EventResult, Op: res.Op, Result: res})
	return res, err
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

// OpenRepository opens the namespace's existing repository for the plugin's own work on it on the
// user's machine (ls, cat, cp, delete, maintenance, verify, status): Kopia's content cache is off,
// so data is read once and never written locally. closeFn releases it.
func OpenRepository(ctx context.Context, s Settings) (_ *repo.Repository, closeFn func(), err error) {
	return openRepo(ctx, s, false)
}

// EnsureRepository opens the namespace's repository, creating it on first use. The plugin calls
// it once per namespace before it starts movers in parallel: two movers creating the same new
// repository at once would race (the loser cannot read the other's format blob).
func EnsureRepository(ctx context.Context, s Settings) error {
	_, closeFn, err := openRepo(ctx, s, true)
	if err != nil {
		return err
	}
	closeFn()
	return nil
}

// withPrefix narrows a location URL to sub ("kopia/ns/") below its prefix, with the prefix query
// parameter that store.Parse appends to the path's prefix.
func withPrefix(location, sub string) string {
	u, err := url.Parse(location)
	if err != nil {
		return location // store.Open reports it
	}
	q := u.Query()
	q.Set("prefix", strings.Trim(strings.Trim(q.Get("prefix"), "/")+"/"+sub, "/"))
	u.RawQuery = q.Encode()
	return u.String()
}
