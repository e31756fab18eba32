//go:build integration

package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// tenantKubeconfig makes namespace ns with a ServiceAccount bound to the cluster's `admin`
// ClusterRole by a RoleBinding in ns alone (a namespace admin of a shared cluster), and writes a
// kubeconfig that authenticates with a token of it.
func tenantKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "tenant"}}, metav1.CreateOptions{}))
	must(cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tenant", Namespace: ns}}}, metav1.CreateOptions{}))
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "tenant", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: cp.Config.Host, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["tenant"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["tenant"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "tenant", Namespace: ns}
	cfg.CurrentContext = "tenant"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNamespaceAdminBacksUpAndRestores: a user with only the `admin` ClusterRole bound in their
// namespace backs it up (resources; the types and cluster objects they may not read are left out
// with a warning, not a failure), lists and describes the backup, and restores it into the same
// namespace; the same user naming another namespace fails, the error naming that namespace and
// the right missing.
func TestNamespaceAdminBacksUpAndRestores(t *testing.T) {
	ctx := context.Background()
	ns, other := "tenant-a", "tenant-b"
	for _, n := range []string{ns, other} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamespace(t, n) })
	}
	kc := tenantKubeconfig(t, ns)
	for _, o := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "app-config"}, Data: map[string]string{"mode": "prod"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "app-flags"}, Data: map[string]string{"beta": "on"}},
	} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To("tenant-none"),
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	loc := "file://" + t.TempDir()
	t.Setenv("PVBACKUP_PASSWORD", "correct horse battery staple")

	r := run(t, "--kubeconfig", kc, "create", "tenant-1", "--to", loc, "--include-namespaces", ns, "--volumes", "none", "--dry-run")
	if r.code != 0 || !strings.Contains(r.out+r.err, "not allowed") {
		t.Fatalf("dry run as namespace admin: exit %d, want 0 and the types left out named\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, "--kubeconfig", kc, "create", "tenant-1", "--to", loc, "--include-namespaces", ns, "--volumes", "none")
	if r.code != 0 || !strings.Contains(r.out, `Backup "tenant-1" Completed`) {
		t.Fatalf("create as namespace admin: exit %d, want Completed\n%s%s", r.code, r.out, r.err)
	}
	for _, args := range [][]string{{"list", "--from", loc}, {"describe", "tenant-1", "--from", loc}} {
		if r := run(t, append([]string{"--kubeconfig", kc}, args...)...); r.code != 0 || !strings.Contains(r.out, "tenant-1") {
			t.Fatalf("%s as namespace admin: exit %d\n%s%s", args[0], r.code, r.out, r.err)
		}
	}

	r = run(t, "--kubeconfig", kc, "create", "tenant-2", "--to", loc, "--include-namespaces", other, "--volumes", "none")
	if r.code == 0 || !strings.Contains(r.err, `"`+other+`"`) || !strings.Contains(r.err, "get namespaces") {
		t.Fatalf("create of another namespace: exit %d, want a failure naming %s and the missing right\n%s%s", r.code, other, r.out, r.err)
	}

	for _, name := range []string{"app-config", "app-flags"} {
		if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r = run(t, "--kubeconfig", kc, "restore", "tenant-1", "--from", loc)
	if r.code != 0 || !hasRow(r.out, "namespaces", "-", ns, "skipped", "exists") {
		t.Fatalf("restore as namespace admin: exit %d, want 0 with the namespace skipped as existing\n%s%s", r.code, r.out, r.err)
	}
	for _, name := range []string{"app-config", "app-flags"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap %s not restored: %v", name, err)
		}
	}
}
