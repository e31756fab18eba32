// Package prune is the engine of `kubectl pvbackup prune`: it decides with package retention
// which backups of a location go, removes them with package removal, then runs maintenance of
// every namespace repository that lost snapshots. It holds the location's maintenance lease.
package prune

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/removal"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
)

// NoMaintenance skips the maintenance after removal (--maintenance none).
const NoMaintenance maintenance.Mode = "none"

// Config is the policy and what to do after.
type Config struct {
	retention.Options
	DryRun bool
	// Maintenance of the repositories that lost snapshots: quick (default: compacts indexes),
	// full (also frees the data, within Safety's margins) or NoMaintenance.
	Maintenance maintenance.Mode
	Safety      maintenance.Safety
}

// Deps are the catalog and how to reach volume data.
type Deps struct {
	Catalog *catalog.Catalog
	// Removal and Maintain carry the same location; their Catalog/Location fields are set from here.
	Removal  removal.Deps
	Maintain maintenance.Deps
	Progress progress.Reporter
}

// Item is one backup's decision and, when it was removed, what went.
type Item struct {
	retention.Decision
	Removed *removal.Result `json:"removed,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Result is a prune run.
type Result struct {
	Location    string                   `json:"location"`
	Policy      string                   `json:"policy"`
	DryRun      bool                     `json:"dryRun,omitempty"`
	Items       []Item                   `json:"backups"`
	Ignored     int                      `json:"ignored"` // backups the selection left out
	Maintenance []maintenance.RepoResult `json:"maintenance,omitempty"`
}

// Counts returns how many backups are kept, removed, and failed to be removed.
func (r *Result) Counts() (kept, removed, failed int) {
	for _, it := range r.Items {
		switch {
		case it.Error != "":
			failed++
		case it.Action == retention.Remove:
			removed++
		default:
			kept++
		}
	}
	return kept, removed, failed
}

// Failed reports whether a removal or a maintenance failed.
func (r *Result) Failed() bool {
	_, _, failed := r.Counts()
	for _, m := range r.Maintenance {
		if m.Error != "" {
			failed++
		}
	}
	return failed > 0
}

// Run prunes the location. A dry run decides and prints, and neither takes the lease nor
// changes anything.
func Run(ctx context.Context, d Deps, cfg Config) (_ *Result, err error) {
	d, cfg = withDefaults(d, cfg)
	loc := d.Catalog.Location()
	res := &Result{Location: loc.String(), Policy: cfg.Policy.String(), DryRun: cfg.DryRun, Items: []Item{}}
	// held says whether the lease is still ours, before each step that deletes.
	held := func() error { return nil }
	if !cfg.DryRun {
		l, err := lease.Acquire(ctx, loc, "prune", 0)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, l.Release(ctx)) }()
		held = l.Err
	}
	targets, err := decide(ctx, d, cfg, res)
	if err != nil {
		return nil, err
	}
	if cfg.DryRun || len(targets) == 0 {
		return res, nil
	}
	if err := held(); err != nil {
		return res, err
	}
	touched := remove(ctx, d, res, targets)
	if cfg.Maintenance == NoMaintenance || ctx.Err() != nil {
		return res, ctx.Err()
	}
	md := d.Maintain
	md.Location, md.Progress = loc, d.Progress
	for _, ns := range touched {
		if err := held(); err != nil {
			return res, err
		}
		res.Maintenance = append(res.Maintenance, maintenance.MaintainRepository(ctx, md, ns, cfg.Maintenance, cfg.Safety))
	}
	return res, ctx.Err()
}

func withDefaults(d Deps, cfg Config) (Deps, Config) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	if cfg.Maintenance == "" {
		cfg.Maintenance = maintenance.Quick
	}
	if cfg.Safety == "" {
		cfg.Safety = maintenance.SafetyFull
	}
	return d, cfg
}

// decide lists the location's backups, lets retention decide, records every decision in res and
// returns the backups to remove.
func decide(ctx context.Context, d Deps, cfg Config, res *Result) ([]removal.Target, error) {
	entries, err := d.Catalog.ListSummaries(ctx) // one backup.json at a time, only what retention and removal read
	if err != nil {
		return nil, err
	}
	decisions, ignored := retention.Decide(entries, cfg.Options)
	res.Ignored = ignored
	if err := keepLocked(ctx, d.Catalog, decisions, time.Now()); err != nil {
		return nil, err
	}
	var targets []removal.Target
	for _, dec := range decisions {
		res.Items = append(res.Items, Item{Decision: dec})
		if dec.Action == retention.Remove {
			targets = append(targets, removal.Target{Name: dec.Name, Manifest: dec.Manifest})
		}
	}
	return targets, nil
}

// remove removes the targets, records each outcome on its item of res, and returns the
// namespaces whose repositories lost snapshots, sorted.
func remove(ctx context.Context, d Deps, res *Result, targets []removal.Target) []string {
	index := map[string]int{}
	for i, it := range res.Items {
		if it.Action == retention.Remove {
			index[it.Name] = i
		}
	}
	rd := d.Removal
	rd.Catalog = d.Catalog
	done := d.Progress.Start("remove " + progress.Plural(len(targets), "backup", "backups"))
	outcomes := removal.RemoveAll(ctx, rd, targets, true)
	touched := map[string]bool{}
	failed := 0
	for _, o := range outcomes {
		it := &res.Items[index[o.Name]]
		r := o.Result
		it.Removed = &r
		if o.Err != nil {
			it.Error = o.Err.Error()
			failed++
		}
		for _, ns := range r.Namespaces() {
			touched[ns] = true
		}
	}
	var doneErr error
	if failed > 0 {
		doneErr = fmt.Errorf("%d of %d backups could not be removed", failed, len(targets))
	}
	done(fmt.Sprintf("%d removed", len(targets)-failed), doneErr)
	namespaces := make([]string, 0, len(touched))
	for ns := range touched {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	return namespaces
}
