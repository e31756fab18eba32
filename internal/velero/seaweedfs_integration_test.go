//go:build integration

package velero

import (
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// TestFixtureSeaweedFSReadOnly: reading Velero's location on a real object store changes no
// object: the same keys, sizes, ETags and bytes before and after.
func TestFixtureSeaweedFSReadOnly(t *testing.T) {
	s3ReadOnly(t, s3server.SeaweedFS(t))
}
