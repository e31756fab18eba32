//go:build integration

package store

import (
	"context"
	"errors"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// The real servers the tests use — SeaweedFS (S3), fake-gcs-server (GCS) and Azurite (Azure) —
// honour the conditional writes: If-None-Match, and If-Match (S3, Azure ETags; GCS generations).
func TestConditionalWrites(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"s3", func(t *testing.T) string { s := s3server.SeaweedFS(t); s.SetEnv(t); return s.URL("probe") }},
		{"gcs", func(t *testing.T) string { s := stores.GCS(t); s.SetEnv(t); return s.URL("probe") }},
		{"azure", func(t *testing.T) string { s := stores.Azure(t); s.SetEnv(t); return s.URL("probe") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l, err := Open(ctx, tc.start(t))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := CheckConditional(ctx, l); err != nil {
				t.Fatal(err)
			}
			replaceCurrent(t, l)
		})
	}
}

// replaceCurrent: a replace of the version read succeeds once, and its second try (now stale)
// is ErrChanged, without harm to what the first wrote.
func replaceCurrent(t *testing.T, l *Location) {
	ctx := context.Background()
	if err := l.WriteNew(ctx, "lease", []byte("one"), "application/json"); err != nil {
		t.Fatal(err)
	}
	_, v, err := l.ReadVersion(ctx, "lease", 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ReplaceIf(ctx, "lease", []byte("two"), v); err != nil {
		t.Fatalf("replace of the current version %q: %v", v, err)
	}
	if err := l.ReplaceIf(ctx, "lease", []byte("three"), v); !errors.Is(err, ErrChanged) {
		t.Fatalf("replace of the stale version %q = %v; want ErrChanged", v, err)
	}
	data, v2, err := l.ReadVersion(ctx, "lease", 1<<10)
	if err != nil || string(data) != "two" || v2 == v {
		t.Fatalf("after the replaces: %q version %q (was %q), %v; want \"two\" under a new version", data, v2, v, err)
	}
}
