// Package maintenance runs Kopia's maintenance of a location's namespace repositories from the
// user's machine (no Job in the cluster), and reports their state. Quick maintenance compacts
// indexes; full maintenance also drops contents no snapshot references and deletes the packs
// that held only those. One run at a time per location, kept by a lease in the bucket.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	kopiarepo "github.com/kopia/kopia/repo"
	kmaint "github.com/kopia/kopia/repo/maintenance"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotmaintenance"
	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Safety is how much time Kopia leaves other writers before it deletes anything.
type Safety string

// Safety levels (--safety).
const (
	// SafetyFull is Kopia's default: a backup running at the same moment never loses data;
	// unreferenced data is freed only after two full runs some hours apart, packs after 24 h.
	SafetyFull Safety = "full"
	// SafetyNone frees everything unreferenced at once. Only for an owner who knows no backup,
	// restore or other maintenance touches the location while it runs.
	SafetyNone Safety = "none"
)

// ParseSafety checks a --safety value.
func ParseSafety(s string) (Safety, error) {
	switch v := Safety(s); v {
	case SafetyFull, SafetyNone:
		return v, nil
	}
	return "", fmt.Errorf("--safety=%q: use full or none", s)
}

func (s Safety) kopia() kmaint.SafetyParameters {
	if s == SafetyNone {
		return kmaint.SafetyNone
	}
	return kmaint.SafetyFull
}

// Mode is quick or full.
type Mode string

// Modes.
const (
	Quick Mode = "quick"
	Full  Mode = "full"
)

// Deps are the location and how to open its repositories.
type Deps struct {
	Location *store.Location
	// Repos opens the namespace repositories. Its Clock, for simulations only (hack/bench-repo),
	// runs them on simulated time: Kopia's schedules and safety margins, and the blob times its
	// index compaction and cleanups read (see repo.Clock).
	Repos    *repo.Service
	Progress progress.Reporter
}

// Config is which repositories and how.
type Config struct {
	Namespaces selection.NamespaceFilter
	Mode       Mode
	Safety     Safety
}

// BlobStats counts the objects of a repository in the bucket.
type BlobStats struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// RepoResult is one repository's maintenance.
type RepoResult struct {
	Namespace string    `json:"namespace"`
	Mode      Mode      `json:"mode"`
	Safety    Safety    `json:"safety"`
	Before    BlobStats `json:"before"`
	Deleted   BlobStats `json:"deleted"`
	Written   BlobStats `json:"written"`
	// Rewritten is the live bytes moved out of sparse packs (full only).
	Rewritten int64     `json:"rewrittenBytes,omitempty"`
	After     BlobStats `json:"after"`
	Seconds   float64   `json:"durationSeconds"`
	Error     string    `json:"error,omitempty"`
}

// Result is a maintenance run over a location.
type Result struct {
	Location     string       `json:"location"`
	Repositories []RepoResult `json:"repositories"`
}

// Failed reports whether any repository failed.
func (r *Result) Failed() bool {
	for _, rr := range r.Repositories {
		if rr.Error != "" {
			return true
		}
	}
	return false
}

// Run takes the location's lease and maintains every selected repository. A repository that
// fails is recorded and the others still run.
func Run(ctx context.Context, d Deps, cfg Config) (_ *Result, err error) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	namespaces, err := Namespaces(ctx, d.Location, cfg.Namespaces)
	if err != nil {
		return nil, err
	}
	l, err := lease.Acquire(ctx, d.Location, "repo maintain", 0)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	res := &Result{Location: d.Location.String(), Repositories: []RepoResult{}}
	for _, ns := range namespaces {
		if err := l.Err(); err != nil {
			return res, err
		}
		res.Repositories = append(res.Repositories, MaintainRepository(ctx, d, ns, cfg.Mode, cfg.Safety))
	}
	return res, ctx.Err()
}

// Namespaces lists the namespaces that have a repository in the location, sorted.
func Namespaces(ctx context.Context, loc *store.Location, filter selection.NamespaceFilter) ([]string, error) {
	it := loc.Bucket().List(&blob.ListOptions{Prefix: "kopia/", Delimiter: "/"})
	var out []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list repositories in %s: %w", loc, err)
		}
		ns := strings.Trim(strings.TrimPrefix(obj.Key, "kopia/"), "/")
		if obj.IsDir && ns != "" && filter.Match(ns) {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out, nil
}

// listBlobs returns the size of every object of the namespace's repository.
func listBlobs(ctx context.Context, loc *store.Location, ns string) (map[string]int64, error) {
	prefix, err := repo.NamespacePrefix(ns)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	it := loc.Bucket().List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", prefix, loc, err)
		}
		out[obj.Key] = obj.Size
	}
}

func stats(m map[string]int64) BlobStats {
	s := BlobStats{Blobs: len(m)}
	for _, n := range m {
		s.Bytes += n
	}
	return s
}

// diff returns what is in a and not in b.
func diff(a, b map[string]int64) BlobStats {
	var s BlobStats
	for k, n := range a {
		if _, ok := b[k]; !ok {
			s.Blobs++
			s.Bytes += n
		}
	}
	return s
}

// MaintainRepository runs Kopia's maintenance of one namespace's repository. The caller holds
// the location's lease.
func MaintainRepository(ctx context.Context, d Deps, ns string, mode Mode, safety Safety) RepoResult {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	start := time.Now()
	rr := RepoResult{Namespace: ns, Mode: mode, Safety: safety}
	done := d.Progress.Start(fmt.Sprintf("%s maintenance of kopia/%s/", mode, ns))
	err := maintain(ctx, d, ns, mode, safety, &rr)
	rr.Seconds = time.Since(start).Seconds()
	if err != nil {
		rr.Error = err.Error()
	}
	rewritten := ""
	if rr.Rewritten > 0 {
		rewritten = fmt.Sprintf(", %s moved out of sparse packs", progress.Bytes(rr.Rewritten))
	}
	done(fmt.Sprintf("%s (%s) before, %d (%s) deleted, %d (%s) after%s, %.1fs", progress.Plural(int(rr.Before.Blobs), "blob", "blobs"), progress.Bytes(rr.Before.Bytes),
		rr.Deleted.Blobs, progress.Bytes(rr.Deleted.Bytes), rr.After.Blobs, progress.Bytes(rr.After.Bytes), rewritten, rr.Seconds), err)
	return rr
}

func maintain(ctx context.Context, d Deps, ns string, mode Mode, safety Safety, rr *RepoResult) error {
	before, err := listBlobs(ctx, d.Location, ns)
	if err != nil {
		return err
	}
	rr.Before, rr.After = stats(before), stats(before)
	r, closeFn, err := d.Repos.Open(ctx, ns)
	if err != nil {
		return err
	}
	defer closeFn()
	dr, ok := r.Repository.(kopiarepo.DirectRepository)
	if !ok {
		return fmt.Errorf("repository %s does not allow maintenance", r.Location())
	}
	err = runCycles(ctx, dr, mode, safety, rr)
	var notOwned kmaint.NotOwnedError
	if errors.As(err, &notOwned) {
		return fmt.Errorf("maintenance of %s belongs to %s, not to %s@%s (set it back with `kopia maintenance set --owner=%s@%s`)", r.Location(), notOwned.Owner, repo.ClientUser, repo.ClientHost, repo.ClientUser, repo.ClientHost)
	}
	if err != nil {
		return fmt.Errorf("%s maintenance of %s: %w", mode, r.Location(), err)
	}
	after, err := listBlobs(ctx, d.Location, ns)
	if err != nil {
		return err
	}
	rr.After, rr.Deleted, rr.Written = stats(after), diff(before, after), diff(after, before)
	return nil
}

// runCycles runs Kopia's maintenance in mode: one cycle, or for a full one with safety none two
// cycles a clock second apart, then the repack and, when it rewrote packs, one more cycle.
func runCycles(ctx context.Context, dr kopiarepo.DirectRepository, mode Mode, safety Safety, rr *RepoResult) error {
	var err error
	km := kmaint.ModeQuick
	if mode == Full {
		km = kmaint.ModeFull
	}
	// Kopia's full cycle marks unreferenced contents deleted, but drops from the index only those
	// marked before the cycle's clock second (index times are whole seconds). With safety none
	// nothing else has to be waited for, so a second cycle runs a clock second after the first and
	// drops what the first marked. Then the repack empties sparse packs, and with safety none one
	// more cycle deletes them (with Kopia's margins, a later run does).
	cycles := 1
	if mode == Full && safety == SafetyNone {
		cycles = 2
	}
	for i := 0; i < cycles && err == nil; i++ {
		if i > 0 {
			err = nextSecond(ctx)
		}
		if err == nil {
			err = cycle(ctx, dr, km, safety)
		}
	}
	if err == nil && mode == Full {
		err = kopiarepo.DirectWriteSession(ctx, dr, kopiarepo.WriteSessionOptions{Purpose: "kubectl-pvbackup repack"},
			func(ctx context.Context, dw kopiarepo.DirectRepositoryWriter) error {
				rr.Rewritten, err = repack(ctx, dw, safety)
				return err
			})
		if err == nil && rr.Rewritten > 0 && safety == SafetyNone {
			if err = nextSecond(ctx); err == nil {
				err = cycle(ctx, dr, km, safety)
			}
		}
	}
	return err
}

// cycle is one run of Kopia's maintenance.
func cycle(ctx context.Context, dr kopiarepo.DirectRepository, km kmaint.Mode, safety Safety) error {
	return kopiarepo.DirectWriteSession(ctx, dr, kopiarepo.WriteSessionOptions{Purpose: "kubectl-pvbackup maintenance"},
		func(ctx context.Context, dw kopiarepo.DirectRepositoryWriter) error {
			return snapshotmaintenance.Run(ctx, dw, km, false, safety.kopia())
		})
}

// nextSecond waits until the wall clock is in a later second than now (with a margin): Kopia
// compares index times in whole seconds. There is nothing to watch but the clock. A simulated
// clock (Deps.Repos.Clock) flows with the real one, so the wait is the same under simulation.
func nextSecond(ctx context.Context) error {
	t := time.NewTimer(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 100*time.Millisecond)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RepoStatus is the state of one namespace's repository.
type RepoStatus struct {
	Namespace       string    `json:"namespace"`
	Size            BlobStats `json:"size"`
	Snapshots       int       `json:"snapshots"`
	Owner           string    `json:"maintenanceOwner,omitempty"`
	LastMaintenance time.Time `json:"lastMaintenance,omitzero"`
	LastFull        time.Time `json:"lastFullMaintenance,omitzero"`
	NextFull        time.Time `json:"nextFullMaintenance,omitzero"`
	// Format is the repository's format (hash, encryption, splitter), chosen when it was created.
	Format *repo.Format `json:"format,omitempty"`
	Error  string       `json:"error,omitempty"`
}

// Status reports each selected repository. open false reports bucket sizes only (no password).
func Status(ctx context.Context, d Deps, filter selection.NamespaceFilter, open bool) ([]RepoStatus, error) {
	namespaces, err := Namespaces(ctx, d.Location, filter)
	if err != nil {
		return nil, err
	}
	out := []RepoStatus{}
	for _, ns := range namespaces {
		st := RepoStatus{Namespace: ns}
		blobs, err := listBlobs(ctx, d.Location, ns)
		if err == nil {
			st.Size = stats(blobs)
			if open {
				err = repoStatus(ctx, d, &st)
			}
		}
		if err != nil {
			st.Error = err.Error()
		}
		out = append(out, st)
	}
	return out, nil
}

func repoStatus(ctx context.Context, d Deps, st *RepoStatus) error {
	r, closeFn, err := d.Repos.OpenReadOnly(ctx, st.Namespace)
	if err != nil {
		return err
	}
	defer closeFn()
	ids, err := snapshot.ListSnapshotManifests(ctx, r, nil, nil)
	if err != nil {
		return fmt.Errorf("list snapshots of %s: %w", r.Location(), err)
	}
	st.Snapshots = len(ids)
	f := r.Format()
	st.Format = &f
	p, err := kmaint.GetParams(ctx, r)
	if err != nil {
		return fmt.Errorf("read maintenance owner of %s: %w", r.Location(), err)
	}
	st.Owner = p.Owner
	dr, ok := r.Repository.(kopiarepo.DirectRepository)
	if !ok {
		return nil
	}
	s, err := kmaint.GetSchedule(ctx, dr)
	if err != nil {
		return fmt.Errorf("read maintenance schedule of %s: %w", r.Location(), err)
	}
	st.NextFull = s.NextFullMaintenanceTime
	var all []kmaint.TaskType
	for task := range s.Runs {
		all = append(all, task)
	}
	st.LastMaintenance, st.LastFull = lastRun(s, all), lastRun(s, []kmaint.TaskType{kmaint.TaskSnapshotGarbageCollection})
	return nil
}

// lastRun is the newest successful end of one of the tasks; snapshot GC runs in full
// maintenance only.
func lastRun(s *kmaint.Schedule, tasks []kmaint.TaskType) time.Time {
	var t time.Time
	for _, task := range tasks {
		for _, ri := range s.Runs[task] {
			if ri.Success && ri.End.After(t) {
				t = ri.End
			}
		}
	}
	return t
}
