//go:build integration

package prune

import (
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// On the real S3 server: five backups of a 200 MiB tree with 20 % of the files changed between
// them, pruned to the newest with full maintenance (safety none).
func TestPruneToNewestSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	pruneToNewest(t, newWorld(t, srv.URL("prune"), 400, 512<<10), 5, 0.2)
}

func TestBackupDuringMaintenanceSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	backupDuringMaintenance(t, newWorld(t, srv.URL("concurrent"), 400, 128<<10))
}
