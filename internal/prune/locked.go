package prune

import (
	"context"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/immutable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
)

// keepLocked turns each removal of a backup that an immutable location still locks into a keep,
// with the date it unlocks as the reason, before anything is removed: the next prune after that
// date removes it.
func keepLocked(ctx context.Context, cat *catalog.Catalog, decisions []retention.Decision, now time.Time) error {
	if cat.Location().Lock() == nil {
		return nil
	}
	for i := range decisions {
		d := &decisions[i]
		if d.Action != retention.Remove {
			continue
		}
		until, err := immutable.LockedUntil(ctx, cat, d.Name)
		if err != nil {
			return err
		}
		if until.After(now) {
			d.Action = retention.Keep
			d.Reasons = append(d.Reasons, "locked until "+until.Format(time.RFC3339)+" (immutable location)")
		}
	}
	return nil
}
