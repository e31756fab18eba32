//go:build integration

package catalog

import (
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// TestStorageSuiteSeaweedFS runs the storage suite against a real object store.
func TestStorageSuiteSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	loc, err := store.Open(context.Background(), srv.URL("backups"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	storageSuite(t, loc)
}

// TestClaimSuiteSeaweedFS checks name claims against a real object store's conditional writes.
func TestClaimSuiteSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	loc, err := store.Open(context.Background(), srv.URL("claims"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	claimSuite(t, loc)
}
