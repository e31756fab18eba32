//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// adminKubeconfig writes a kubeconfig for a ServiceAccount of ns bound to the cluster's `admin`
// ClusterRole by a RoleBinding in ns alone: a namespace admin of a shared cluster.
func (c *Cluster) adminKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "tenant"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tenant", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "tenant", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg.AuthInfos["tenant"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["tenant"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "tenant", Namespace: ns}
	cfg.CurrentContext = "tenant"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNamespaceAdminBacksUpWithFS: a ServiceAccount token with only `admin` bound in its namespace
// backs the namespace up with fs volumes, restores it there (the claim filled again, data equal),
// restores the claim's data alone into a new claim, and lists the backup; the same token on
// another namespace fails, naming that namespace and the right it lacks.
func TestNamespaceAdminBacksUpWithFS(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns, other := c.Namespace(t, "e2e-tenant"), c.Namespace(t, "e2e-tenant-other")
	kc := c.adminKubeconfig(t, ns)
	c.PVC(t, ns, "data", "200Mi", nil)
	c.RunJob(t, ns, "fill", "data", 3*time.Minute, "sh", "-c", strings.ReplaceAll(writeScript, "$NAME", "tenant"))
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := c.sums(t, ns, []string{"data"}, "before")
	c.deleteJobs(t, ns)
	loc := c.location(t)
	name := "tenant-" + randomSuffix()
	as := func(args ...string) []string {
		return append(append([]string{"--kubeconfig", kc}, args...), moverArgs()...)
	}

	r := runPlugin(t, 5*time.Minute, as("create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs")...)
	if r.code != 0 || !strings.Contains(r.stdout, "Completed") {
		t.Fatalf("create as namespace admin: exit %d\n%s", r.code, r.stdout)
	}
	r = runPlugin(t, time.Minute, "--kubeconfig", kc, "describe", name, "--from", loc)
	if r.code != 0 || !strings.Contains(r.stdout, ns+"/data") {
		t.Fatalf("describe as namespace admin: exit %d\n%s", r.code, r.stdout)
	}

	r = runPlugin(t, 2*time.Minute, as("create", name+"-b", "--to", loc, "--include-namespaces", other, "--volumes", "fs")...)
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("namespace %q: the right to get namespaces in %s is missing", other, other)) {
		t.Fatalf("create of another namespace: exit %d, want a failure naming %s and the right\n%s", r.code, other, r.stderr)
	}

	ctx := context.Background()
	if err := c.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deletePVC(t, ns, "data")
	r = runPlugin(t, 5*time.Minute, as("restore", name, "--from", loc)...)
	if r.code != 0 || !strings.Contains(r.stdout, "1 volume restored") {
		t.Fatalf("restore as namespace admin: exit %d\n%s", r.code, r.stdout)
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap settings not restored: %v", err)
	}
	if got := c.sums(t, ns, []string{"data"}, "after"); got["data"] != want["data"] {
		t.Errorf("restored data differs\nwant:\n%s\ngot:\n%s", head(want["data"]), head(got["data"]))
	}
	r = runPlugin(t, 5*time.Minute, as("restore", name, "--from", loc, "--data-only", "--volumes", ns+"/data", "--target-pvc", ns+"/data-copy")...)
	if r.code != 0 {
		t.Fatalf("restore --data-only as namespace admin: exit %d\n%s", r.code, r.stdout)
	}
	if got := c.sums(t, ns, []string{"data-copy"}, "copy"); got["data-copy"] != want["data"] {
		t.Errorf("--data-only copy differs\nwant:\n%s\ngot:\n%s", head(want["data"]), head(got["data-copy"]))
	}
	c.noLeftovers(t, name)
}

// deletePVC deletes a claim and waits until it is gone.
func (c *Cluster) deletePVC(t *testing.T, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lw := kube.ListWatch(c.Kube.CoreV1().PersistentVolumeClaims(ns), c.Kube, kube.Named(name))
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.PersistentVolumeClaim{}, func(store cache.Store) (bool, error) {
		_, exists, err := store.GetByKey(ns + "/" + name)
		return !exists, err
	}, func(ev watch.Event) (bool, error) { return ev.Type == watch.Deleted, nil })
	if err != nil {
		t.Fatalf("PVC %s/%s not gone within 2m: %v\n%s", ns, name, err, c.Diagnose(ns))
	}
}
