// Package copier is the engine of `kubectl pvbackup copy`: it puts backups of one location into a
// second one (another store type allowed), where each is a full backup of its own: its manifest,
// archive and log, and the namespace repositories its volumes' Kopia snapshots live in.
//
// Keys: the second location shares the first's location key (keys.go), and everything is copied
// byte for byte, encrypted as it is. Re-encrypting under another key would mean decrypting and
// re-encrypting every content and re-hashing it (Kopia's content IDs are keyed per repository), so
// no copy could be incremental; with the same key a copy moves only the blobs the second location
// lacks, needs no password for the volume data, and the same password opens both locations.
package copier

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Deps are the two locations and how to report.
type Deps struct {
	From, To *store.Location
	Password string
	Progress progress.Reporter
	// Limits bound the bytes per second read from From (download) and written to To (upload).
	Limits repo.Limits
	// throttle is Limits' token buckets, shared by every blob and file of the run (Run sets it).
	throttle *repo.Throttle
	// AfterBlob, for tests, is called after each blob copied; an error interrupts the copy.
	AfterBlob func() error
}

// Config says which backups to copy: Names, or those Selector matches, or All.
type Config struct {
	Names    []string
	Selector labels.Selector
	All      bool
}

// Item is one backup's copy.
type Item struct {
	Name   string `json:"name"`
	Action string `json:"action"` // copied, present (already there) or failed
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// Result is a copy run.
type Result struct {
	From         string     `json:"from"`
	To           string     `json:"to"`
	Backups      []Item     `json:"backups"`
	Repositories []RepoCopy `json:"repositories"`
	Bytes        int64      `json:"bytes"` // moved in all
	Seconds      float64    `json:"seconds"`
}

// Failed counts the backups that were not copied.
func (r *Result) Failed() int {
	n := 0
	for _, it := range r.Backups {
		if it.Action == "failed" {
			n++
		}
	}
	return n
}

// Run copies the chosen backups: the keys first, then every namespace repository they use, then
// each backup's files (its manifest last, so that a backup appears in the second location only
// once all of it is there).
func Run(ctx context.Context, d Deps, cfg Config) (_ *Result, err error) {
	start := time.Now()
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	res := &Result{From: d.From.String(), To: d.To.String(), Backups: []Item{}, Repositories: []RepoCopy{}}
	if err := checkLocks(d.From, d.To); err != nil {
		return nil, err
	}
	if d.throttle, err = repo.NewThrottle(d.Limits); err != nil {
		return nil, err
	}
	chosen, err := choose(ctx, catalog.New(d.From), cfg)
	if err != nil {
		return nil, err
	}
	if err := sameKey(ctx, d.From, d.To, d.Password); err != nil {
		return nil, err
	}
	// The first location's maintenance lease: maintenance deleting blobs while they are listed and
	// copied would leave the copy without some of them.
	l, err := lease.Acquire(ctx, d.From, "copy", 0)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.Release(context.WithoutCancel(ctx))) }()
	for _, ns := range namespaces(chosen) {
		if err := l.Err(); err != nil {
			return res, err
		}
		rc, err := d.syncNamespace(ctx, ns)
		res.Repositories = append(res.Repositories, rc)
		res.Bytes += rc.Bytes
		if err != nil {
			res.Seconds = time.Since(start).Seconds()
			return res, err
		}
	}
	for _, m := range chosen {
		it := d.copyFiles(ctx, m.Name)
		res.Backups = append(res.Backups, it)
		res.Bytes += it.Bytes
	}
	res.Seconds = time.Since(start).Seconds()
	return res, ctx.Err()
}

// checkLocks refuses to copy between locations not locked the same way: the repositories' own
// retention (kopia.blobcfg) comes with them. Into an immutable location from a plain one, the
// copied volume data would never have its locks extended; from an immutable location into a plain
// one, every later Kopia write there (maintenance) would ask for a lock the store cannot give.
func checkLocks(from, to *store.Location) error {
	fl, tl := from.Lock(), to.Lock()
	if (fl == nil && tl == nil) || (fl != nil && tl != nil && *fl == *tl) {
		return nil
	}
	lockOf := func(l *store.Lock) string {
		if l == nil {
			return "not immutable"
		}
		return "immutable, " + l.String()
	}
	return fmt.Errorf("%s is %s and %s is %s: the volume data repositories' retention comes with them, so copy only between locations locked the same way (make the second one with repo init --immutable-for and --mode as the first)", from, lockOf(fl), to, lockOf(tl))
}

// choose reads the manifests of the chosen backups. A backup without a readable manifest cannot
// be copied (it names no volume data) and is an error when named.
func choose(ctx context.Context, cat *catalog.Catalog, cfg Config) ([]*catalog.Manifest, error) {
	if len(cfg.Names) > 0 {
		var out []*catalog.Manifest
		for _, n := range cfg.Names {
			m, err := cat.Manifest(ctx, n)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	entries, err := cat.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*catalog.Manifest
	for _, e := range entries {
		if e.Manifest == nil || (cfg.Selector != nil && !cfg.Selector.Matches(labels.Set(e.Manifest.Labels))) {
			continue
		}
		out = append(out, e.Manifest)
	}
	return out, nil
}

// namespaces are those whose repositories hold the backups' volume data, sorted.
func namespaces(ms []*catalog.Manifest) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for _, v := range m.Volumes {
			if v.KopiaSnapshot != "" {
				set[v.Namespace] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func (d Deps) syncNamespace(ctx context.Context, ns string) (RepoCopy, error) {
	prefix, err := repo.NamespacePrefix(ns)
	if err != nil {
		return RepoCopy{Namespace: ns}, err
	}
	from, err := d.From.Sub(ctx, prefix)
	if err != nil {
		return RepoCopy{Namespace: ns}, err
	}
	defer from.Close()
	to, err := d.To.Sub(ctx, prefix)
	if err != nil {
		return RepoCopy{Namespace: ns}, err
	}
	defer to.Close()
	done := d.Progress.Start("copy the volume data repository of " + ns)
	rc, err := syncRepository(ctx, blobTarget{from: from, to: to, lock: d.To.Lock(), after: d.AfterBlob, throttle: d.throttle}, ns)
	done(fmt.Sprintf("%s (%s) copied, %d already there", progress.Plural(int(rc.Blobs), "blob", "blobs"), progress.Bytes(rc.Bytes), rc.Present), err)
	return rc, err
}
