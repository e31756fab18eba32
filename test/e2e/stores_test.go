//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// TestObjectStores backs a volume up to GCS (fake-gcs-server) and to Azure Blob (Azurite) with
// the real plugin and movers, and restores it into another namespace with every checksum equal.
// The servers listen on the cluster's gateway address (hack/e2e.sh starts them with
// hack/stores-env), which the plugin and the mover pods both reach. S3 is every other test's store.
func TestObjectStores(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env string
		start     func(testing.TB) *stores.Server
	}{
		{"gcs", stores.EnvGCSEndpoint, stores.GCS},
		{"azure", stores.EnvAzureEndpoint, stores.Azure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if os.Getenv(tc.env) == "" {
				t.Fatalf("%s is not set: run the e2e tests with `make e2e` (hack/e2e.sh starts the %s server where pods reach it)", tc.env, tc.name)
			}
			srv := tc.start(t)
			c := NewCluster(t)
			ns := c.Namespace(t, "e2e-"+tc.name)
			c.PVC(t, ns, "data", "64Mi", nil)
			c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", strings.ReplaceAll(writeScript, "$NAME", tc.name))
			want := c.sums(t, ns, []string{"data"}, "before")
			loc := srv.URL("e2e-" + randomSuffix())
			name := tc.name + "-" + randomSuffix()
			r := runPluginEnv(t, 10*time.Minute, srv.Env(), append([]string{"create", name, "--to", loc, "--include-namespaces", ns}, moverArgs()...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "Completed") {
				t.Fatalf("create to %s: exit %d\n%s\n%s", tc.name, r.code, r.stdout, c.Diagnose(ns))
			}
			target := ns + "-r"
			t.Cleanup(func() { c.deleteNamespace(t, target) })
			r = runPluginEnv(t, 10*time.Minute, srv.Env(), append([]string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + target}, moverArgs()...)...)
			if r.code != 0 {
				t.Fatalf("restore from %s: exit %d\n%s\n%s", tc.name, r.code, r.stdout, c.Diagnose(target))
			}
			compareSums(t, want, c.sums(t, target, []string{"data"}, "after"), "restore from "+tc.name)
			c.noLeftovers(t, name)
		})
	}
}
