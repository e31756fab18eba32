//go:build integration

package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The lease relies on the store refusing a create over an existing object (If-None-Match: *):
// check the real S3 server does.
func TestLeaseSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	ctx := context.Background()
	loc, err := store.Open(ctx, srv.URL("lease"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	first, err := Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(ctx, loc, "repo maintain", time.Minute); !errors.Is(err, ErrHeld) {
		t.Fatalf("second acquire on S3: %v; want ErrHeld", err)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(ctx, loc, "repo maintain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_ = second.Release(ctx)
}

// Twenty runs take over an expired lease at once on the real S3 server: the takeover is a PUT
// with If-Match on the version read, which SeaweedFS must honour.
func TestConcurrentTakeoverSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	loc, err := store.Open(context.Background(), srv.URL("takeover"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	for range 5 {
		concurrentTakeover(t, loc, 20)
	}
}
