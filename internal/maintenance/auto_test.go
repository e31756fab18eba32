package maintenance

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// TestAuto: create's maintenance runs a repository's quick cycle when Kopia's schedule says it is
// due (a new repository), not again within the hour, and not at all while another run holds the
// location's lease (it says who, and does not wait).
func TestAuto(t *testing.T) {
	ctx := context.Background()
	d, loc := backedUp(t, "shop")

	held, err := lease.Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Auto(ctx, d, []string{"shop"})
	if err != nil || len(res.Ran) != 0 || !strings.Contains(res.Skipped, held.Record().Owner+" is running prune") {
		t.Fatalf("auto while a prune holds the location: %v %+v", err, res)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}

	res, err = Auto(ctx, d, []string{"shop"})
	if err != nil || !reflect.DeepEqual(res.Ran, []string{"shop"}) || len(res.NotDue) != 0 {
		t.Fatalf("auto on a new repository: %v %+v", err, res)
	}
	sts, err := Status(ctx, d, selection.NamespaceFilter{}, true)
	if err != nil || len(sts) != 1 || sts[0].LastMaintenance.IsZero() {
		t.Fatalf("status after auto: %v %+v", err, sts)
	}
	res, err = Auto(ctx, d, []string{"shop"})
	if err != nil || len(res.Ran) != 0 || !reflect.DeepEqual(res.NotDue, []string{"shop"}) {
		t.Fatalf("auto again within the hour: %v %+v", err, res)
	}
	// The lease is given back each time.
	if l, err := lease.Acquire(ctx, loc, "check", time.Minute); err != nil {
		t.Fatalf("the lease was left held: %v", err)
	} else {
		_ = l.Release(ctx)
	}
}
