//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// veleroBucket copies the bucket Velero 1.18.3 wrote in the lab (testdata/velero/v1.18) into a
// directory and returns its URL.
func veleroBucket(t *testing.T) string {
	t.Helper()
	return "file://" + golden.Copy(t, "velero/v1.18/bucket")
}

// TestVeleroRestorePreflight: `velero restore` checks the target before it creates anything, as
// `restore` does: a claim of Velero's backup whose StorageClass the cluster lacks stops it, naming
// the class, and --data-only is checked the same way.
func TestVeleroRestorePreflight(t *testing.T) {
	url := veleroBucket(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"restore", []string{"--namespace-mapping", "vl-fs:velero-preflight"}},
		{"data-only", []string{"--data-only", "--volumes", "vl-fs/data", "--target-pvc", "velero-preflight/data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"velero", "restore", "fs-deploy", "--from-velero", url, "--mover-location", "s3://velero/lab"}, tc.args...)
			r := run(t, args...)
			want := "StorageClass csi-dir does not exist" // the class of Velero's copy of the claim; this cluster has none
			if r.code != 1 || !strings.Contains(r.out+r.err, want) || !strings.Contains(r.err, "preflight:") || !strings.Contains(r.err, "nothing was created") {
				t.Fatalf("exit %d, want 1 from the preflight naming the class", r.code)
			}
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "velero-preflight", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("namespace velero-preflight: %v, want not found (nothing created)", err)
			}
		})
	}
}
