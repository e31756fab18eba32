//go:build integration

package catalog

import (
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// The catalog's storage and claim suites against GCS (fake-gcs-server) and Azure Blob (Azurite).
func TestStorageSuiteGCS(t *testing.T) {
	srv := stores.GCS(t)
	srv.SetEnv(t)
	bothSuites(t, srv.URL)
}

func TestStorageSuiteAzure(t *testing.T) {
	srv := stores.Azure(t)
	srv.SetEnv(t)
	bothSuites(t, srv.URL)
}

func bothSuites(t *testing.T, url func(string) string) {
	for name, suite := range map[string]func(*testing.T, *store.Location){"Storage": storageSuite, "Claim": claimSuite} {
		t.Run(name, func(t *testing.T) {
			loc, err := store.Open(context.Background(), url(name))
			if err != nil {
				t.Fatal(err)
			}
			defer loc.Close()
			suite(t, loc)
		})
	}
}
