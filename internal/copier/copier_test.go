package copier

import (
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Packs go before the indexes that name them, and Kopia's format and maintenance blobs last.
func TestPhaseOrder(t *testing.T) {
	for k, want := range map[string]int{"p0a1-s2": 0, "q7f": 0, "s3c": 0, "xn0_1": 1, "xe1": 1, "kopia.repository": 2, "kopia.maintenance": 2} {
		if got := phase(k); got != want {
			t.Errorf("phase(%s) = %d; want %d", k, got, want)
		}
	}
}

// Only locations locked the same way (or neither) are copied between.
func TestCheckLocks(t *testing.T) {
	loc := func(l *store.Lock) *store.Location {
		x := store.FromBucket(memblob.OpenBucket(nil), "mem://")
		x.SetLock(l)
		return x
	}
	a := &store.Lock{Mode: store.Compliance, Period: 72 * time.Hour}
	b := &store.Lock{Mode: store.Governance, Period: 72 * time.Hour}
	for _, tc := range []struct {
		from, to *store.Lock
		ok       bool
	}{{nil, nil, true}, {a, a, true}, {a, nil, false}, {nil, a, false}, {a, b, false}} {
		err := checkLocks(loc(tc.from), loc(tc.to))
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "locked the same way")) {
			t.Errorf("checkLocks(%v, %v) = %v; want ok %v", tc.from, tc.to, err, tc.ok)
		}
	}
}
