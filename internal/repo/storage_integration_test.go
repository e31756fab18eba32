//go:build integration

package repo

import (
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The same suite and Kopia round trip against a real S3 server (SeaweedFS) on loopback, through
// the same store.Open the mover uses.
func TestSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	ctx := context.Background()

	t.Run("Storage", func(t *testing.T) {
		loc, err := store.Open(ctx, srv.URL("suite"))
		if err != nil {
			t.Fatal(err)
		}
		b := loc.Sub("kopia/ns/")
		defer b.Close()
		st, release := NewStorage(b, loc.String())
		defer release()
		storageSuite(t, st)
	})
	t.Run("Kopia", func(t *testing.T) {
		loc, err := store.Open(ctx, srv.URL("kopia-e2e"))
		if err != nil {
			t.Fatal(err)
		}
		b := loc.Sub("kopia/ns/")
		defer b.Close()
		kopiaRoundTrip(t, b, loc.String())
	})
}
