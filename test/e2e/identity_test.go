//go:build e2e

package e2e

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// TestMoverIdentity runs movers with no static key: --mover-service-account names an existing
// ServiceAccount and --mover-credentials=identity puts no cloud credential in the mover Secrets.
// The lab has no cloud identity, so the store is one that needs none (fake-gcs-server, anonymous):
// what is proven is that the movers run as the account, with the repository key alone, and reach
// the location. doctor checks the account exists and, with --probe, that a mover under it reaches
// the location; a missing account fails doctor and names it.
func TestMoverIdentity(t *testing.T) {
	t.Parallel()
	if os.Getenv(stores.EnvGCSEndpoint) == "" {
		t.Fatalf("%s is not set: run the e2e tests with `make e2e`", stores.EnvGCSEndpoint)
	}
	srv := stores.GCS(t)
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-identity")
	if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backup-mover",
		Annotations: map[string]string{"iam.gke.io/gcp-service-account": "backup@project.iam.gserviceaccount.com"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	loc := srv.URL("identity-" + randomSuffix())
	identity := append([]string{"--mover-service-account", "backup-mover", "--mover-credentials", "identity"}, moverArgs()...)

	code, rep := doctorRun(t, 5*time.Minute, append([]string{"-n", ns, "--location", loc, "--storage-class", c.StorageClass}, identity...)...)
	wantVerdict(t, code, rep, "mover service account "+ns, doctor.OK, "GKE Workload Identity")
	wantVerdict(t, code, rep, "probe: mover identity", doctor.OK, "running as ServiceAccount backup-mover wrote and deleted a marker")
	c.noProbeLeft(t, rep)
	code, rep = doctorRun(t, time.Minute, append([]string{"-n", ns, "--location", loc, "--probe=false", "--mover-service-account", "nobody"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "mover service account "+ns, doctor.Fail, "ServiceAccount "+ns+"/nobody does not exist")

	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", strings.ReplaceAll(writeScript, "$NAME", "identity"))
	name := "id-" + randomSuffix()
	seen := c.watchMovers(t, ns)
	// The plugin's own environment holds S3 keys (the lab's): none of them may reach the movers.
	r := runPlugin(t, 10*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns}, identity...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "Completed") {
		t.Fatalf("create with identity movers: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	secretKeys, accounts := seen()
	if len(secretKeys) != 1 || secretKeys[0] != "PVBACKUP_PASSWORD" || len(accounts) != 1 || accounts[0] != "backup-mover" {
		t.Fatalf("mover Secrets held %v and mover pods ran as %v; want the repository key alone, and backup-mover", secretKeys, accounts)
	}
	if r := runPlugin(t, 5*time.Minute, "verify", name, "--from", loc, "--read-data", "100"); r.code != 0 {
		t.Fatalf("verify: exit %d\n%s", r.code, r.stdout)
	}
	c.noLeftovers(t, name)
}

// watchMovers records, until the returned function is called, the keys of every temporary mover
// Secret and the ServiceAccount of every mover pod of namespace ns. It lists and watches again
// when the apiserver closes a watch (informers): a bare Watch ended silently on the loaded lab
// machine, and the test then saw no mover at all while create had run them.
func (c *Cluster) watchMovers(t *testing.T, ns string) func() (secretKeys, accounts []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sel := kube.Labelled(map[string]string{volumes.LabelManagedBy: volumes.ManagedBy})
	var mu sync.Mutex
	keys, accounts := map[string]bool{}, map[string]bool{}
	record := func(obj any) {
		mu.Lock()
		defer mu.Unlock()
		switch o := obj.(type) {
		case *corev1.Secret:
			for k := range o.Data {
				keys[k] = true
			}
		case *corev1.Pod:
			accounts[o.Spec.ServiceAccountName] = true
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, o any) { record(o) }}
	var wg sync.WaitGroup
	for _, inf := range []cache.SharedIndexInformer{
		cache.NewSharedIndexInformer(kube.ListWatch(c.Kube.CoreV1().Secrets(ns), c.Kube, sel), &corev1.Secret{}, 0, cache.Indexers{}),
		cache.NewSharedIndexInformer(kube.ListWatch(c.Kube.CoreV1().Pods(ns), c.Kube, sel), &corev1.Pod{}, 0, cache.Indexers{}),
	} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			cancel()
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.Run(ctx.Done())
		}()
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			cancel()
			t.Fatalf("watch of the movers of namespace %s did not sync", ns)
		}
	}
	return func() ([]string, []string) {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(maps.Keys(keys)), slices.Sorted(maps.Keys(accounts))
	}
}
