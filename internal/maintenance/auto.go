package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	kopiarepo "github.com/kopia/kopia/repo"
	kmaint "github.com/kopia/kopia/repo/maintenance"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
)

// AutoResult says what Auto did.
type AutoResult struct {
	Ran     []string `json:"ran,omitempty"`     // namespaces whose quick maintenance ran
	NotDue  []string `json:"notDue,omitempty"`  // ran within Kopia's quick interval (an hour)
	Skipped string   `json:"skipped,omitempty"` // why nothing ran (another run holds the lease)
}

// Auto runs Kopia's quick maintenance (safety full) of the namespaces' repositories that are due
// for it by Kopia's schedule (an hour after the last), as `kopia snapshot create` does after a
// snapshot. Kopia advances and compacts its index epochs only in maintenance: without it a
// location that only ever sees `create` keeps every index blob in its first epoch and each mover's
// open grows with the backups (docs/mover-benchmarks.md). It never waits: when another run holds
// the location's lease it does nothing and says who.
func Auto(ctx context.Context, d Deps, namespaces []string) (_ *AutoResult, err error) {
	res := &AutoResult{}
	if len(namespaces) == 0 {
		return res, nil
	}
	l, err := lease.Acquire(ctx, d.Location, "create's quick maintenance", 0)
	if errors.Is(err, lease.ErrHeld) {
		res.Skipped = err.Error()
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.Release(context.WithoutCancel(ctx))) }()
	var errs []string
	for _, ns := range namespaces {
		if err := l.Err(); err != nil {
			return res, err
		}
		ran, err := autoOne(ctx, d, ns)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("kopia/%s/: %v", ns, err))
		case ran:
			res.Ran = append(res.Ran, ns)
		default:
			res.NotDue = append(res.NotDue, ns)
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("quick maintenance: %s (run `kubectl pvbackup repo maintain`)", strings.Join(errs, "; "))
	}
	return res, nil
}

// autoOne runs one repository's quick cycle if Kopia's schedule says it is due.
func autoOne(ctx context.Context, d Deps, ns string) (bool, error) {
	r, closeFn, err := d.Repos.Open(ctx, ns)
	if err != nil {
		return false, err
	}
	defer closeFn()
	dr, ok := r.Repository.(kopiarepo.DirectRepository)
	if !ok {
		return false, fmt.Errorf("repository %s does not allow maintenance", r.Location())
	}
	if due, err := quickDue(ctx, dr); err != nil || !due {
		return false, err
	}
	return true, cycle(ctx, dr, kmaint.ModeQuick, SafetyFull)
}

// quickDue is Kopia's own test (maintenance.shouldRun, unexported): this identity owns the
// repository's maintenance and the next quick cycle's time has come.
func quickDue(ctx context.Context, dr kopiarepo.DirectRepository) (bool, error) {
	p, err := kmaint.GetParams(ctx, dr)
	if err != nil {
		return false, fmt.Errorf("maintenance parameters: %w", err)
	}
	if !p.QuickCycle.Enabled || p.Owner != dr.ClientOptions().UsernameAtHost() {
		return false, nil
	}
	s, err := kmaint.GetSchedule(ctx, dr)
	if err != nil {
		return false, fmt.Errorf("maintenance schedule: %w", err)
	}
	return !dr.Time().Before(s.NextQuickMaintenanceTime), nil
}
