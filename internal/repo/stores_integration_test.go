//go:build integration

package repo

import (
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// The storage suite and the Kopia round trip against GCS (fake-gcs-server) and Azure Blob
// (Azurite), through the same store.Open the mover uses and gocloud's writer (no direct path).
func TestGCS(t *testing.T) {
	srv := stores.GCS(t)
	srv.SetEnv(t)
	storeSuites(t, srv.URL)
}

func TestAzure(t *testing.T) {
	srv := stores.Azure(t)
	srv.SetEnv(t)
	storeSuites(t, srv.URL)
}

func storeSuites(t *testing.T, url func(prefix string) string) {
	ctx := context.Background()
	t.Run("Storage", func(t *testing.T) {
		b := loc2(t, url("suite"))
		st, release := NewStorage(b, "suite")
		defer release()
		storageSuite(t, st)
	})
	t.Run("Kopia", func(t *testing.T) {
		loc, err := store.Open(ctx, url("kopia-e2e"))
		if err != nil {
			t.Fatal(err)
		}
		defer loc.Close()
		kopiaRoundTrip(t, sub(t, loc), loc.String(), "", "")
	})
}
