package mover

import (
	"context"
	"fmt"
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
	// Limits bound the bandwidth to the location (repo.ParseRate reads the flags).
	Limits repo.Limits
	// Debug keeps the storage calls' timings (HTTP level) in the Result: those of opening the
	// repository and any slower than DebugSlowCall.
	Debug bool
	// Clock, for simulations only (hack/bench-repo), runs the repository on simulated time (see
	// repo.Clock). Not part of the mover's contract: a mover pod always runs on the real clock.
	Clock *repo.Clock
	// Lock, for a repository created by this run in an immutable location, is its retention.
	// The plugin creates repositories (EnsureRepository); not part of the mover's contract.
	Lock *store.Lock
	// ReadOnly opens the repository as another tool's (Velero's): repo.OpenReadOnly, nothing
	// written to the bucket, no cache, no maintenance. Restore only.
	ReadOnly bool
}

// DebugSlowCall is how slow a storage call after the open must be to be listed in Result.Debug.
const DebugSlowCall = time.Second

// maxDebugLines bounds Result.Debug, which must fit the termination message with the rest.
const maxDebugLines = 16

// Repos is the repository service of a run: it opens the one repository of s.Namespace, with
// s.Password.
func (s Settings) Repos() *repo.Service {
	return &repo.Service{Location: s.Location, Key: repo.OneKey(s.Password), CacheDir: s.CacheDir,
		Compression: s.Compression, Limits: s.Limits, Clock: s.Clock, Lock: s.Lock}
}

// tracedRepos is Repos recording the storage calls in trace (nil: none).
func (s Settings) tracedRepos(trace *repo.Tracer) *repo.Service {
	rs := s.Repos()
	rs.Trace = trace
	return rs
}

// RunBackup opens (creating on first use) the namespace's repository and backs up cfg.Source.
// The Result is always returned, with Error set when err != nil, and also sent as the last event.
func RunBackup(ctx context.Context, s Settings, cfg BackupConfig, sink Sink) (*Result, error) {
	start := time.Now()
	cfg.Namespace = s.Namespace
	if err := cfg.validate(); err != nil {
		return finish(sink, failed(OpBackup, start, err), err)
	}
	if s.ReadOnly {
		err := fmt.Errorf("repository %s of namespace %s is opened read-only (another tool's): nothing can be backed up into it", store.Redact(s.Location), s.Namespace)
		return finish(sink, failed(OpBackup, start, err), err)
	}
	trace := newTrace(s)
	r, closeRepo, err := s.tracedRepos(trace.tracer()).OpenOrCreate(ctx, s.Namespace)
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
	open := s.tracedRepos(trace.tracer()).Open
	if s.ReadOnly { // another tool's repository (Velero's): nothing may be written to it
		open = s.tracedRepos(trace.tracer()).OpenReadOnly
	}
	r, closeRepo, err := open(ctx, s.Namespace)
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
