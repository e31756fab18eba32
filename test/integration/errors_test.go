//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

func createNamespace(t *testing.T, name string, configMaps ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range configMaps {
		if _, err := cs.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm}, Data: map[string]string{"k": cm}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Secrets(name).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The controller-manager publishes kube-root-ca.crt into every new namespace a moment later;
	// a backup taken before it arrives would count one object less.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := wait.PollUntilContextCancel(wctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ConfigMaps(name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("namespace %s: kube-root-ca.crt not published within 30s", name)
	}
}

// TestBadSelection checks the errors a user gets for a selection the cluster cannot satisfy.
func TestBadSelection(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	loc := "file://" + t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--include-resources", "deploymnets"}, `unknown resource type "deploymnets" (did you mean deployments.apps?)`},
		{[]string{"--exclude-resources", "confgmap"}, `unknown resource type "confgmap" (did you mean configmaps?)`},
		{[]string{"--include-namespaces", "no-such-ns"}, `namespace "no-such-ns" not found (see ` + "`kubectl get namespaces`)"},
		{[]string{"-l", "a in (b"}, `label selector "a in (b"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, append([]string{"create", "bad", "--to", loc}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.err, tc.want) {
				t.Fatalf("exit %d, want 1 and %q in:\n%s", r.code, tc.want, r.err)
			}
		})
	}
	// The location's key (keys/) is made by the first create that reaches the location; no backup
	// (backups/) may be left by failed ones.
	// (a released claim may leave its empty directory on file://: only files count).
	files := 0
	_ = filepath.WalkDir(filepath.Join(strings.TrimPrefix(loc, "file://"), "backups"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 0 {
		t.Fatalf("failed creates left %d files under backups/ in the location", files)
	}
	r := run(t, "restore", "nope", "--from", loc)
	if r.code != 1 || !strings.Contains(r.err, `backup "nope" not found in file://`) {
		t.Fatalf("restore of a missing backup: exit %d %s", r.code, r.err)
	}
}

// TestPartiallyFailed backs up as a user who may not read Secrets: the backup completes with
// everything else, says PartiallyFailed with the reason, and exits 2.
func TestPartiallyFailed(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	createNamespace(t, "limited-ns", "a", "b")
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "no-secrets"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "configmaps", "serviceaccounts", "pods", "services", "persistentvolumeclaims", "persistentvolumes"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"apps", "batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}},
	}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "no-secrets"}, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "no-secrets"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "limited", APIGroup: "rbac.authorization.k8s.io"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	loc := "file://" + t.TempDir()
	// The preflight sees the missing right first and refuses the plan, naming it; the name
	// stays free.
	r := run(t, "create", "partial", "--to", loc, "--include-namespaces", "limited-ns", "--include-resources", "configmaps,secrets", "--as", "limited")
	if r.code != 1 || !strings.Contains(r.err, "preflight: rights in limited-ns: missing as limited: list secrets") || !strings.Contains(r.err, "nothing was created") {
		t.Fatalf("exit %d, want 1 from the preflight naming the right:\n%s%s", r.code, r.out, r.err)
	}
	if r = run(t, "list", "--from", loc); strings.Contains(r.out, "partial") {
		t.Fatalf("a refused plan left a backup:\n%s", r.out)
	}
	// Run anyway, the failed items are named.
	r = run(t, "create", "partial", "--to", loc, "--include-namespaces", "limited-ns", "--include-resources", "configmaps,secrets", "--as", "limited", "--skip-preflight")
	if r.code != 2 || !strings.Contains(r.out, `Backup "partial" PartiallyFailed`) || !strings.Contains(r.out, `list secrets in namespace limited-ns: secrets is forbidden: User "limited" cannot list resource "secrets"`) {
		t.Fatalf("exit %d, want 2 with the reason:\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, "list", "--from", loc)
	if !hasRow(r.out, "partial", "PartiallyFailed", firstField(r.out, "partial", 2), "-", "limited-ns", "3", firstField(r.out, "partial", 6), firstField(r.out, "partial", 7), "-", "-") {
		t.Fatalf("list:\n%s", r.out)
	}
}

// firstField returns field i of the first line starting with prefix (for columns like AGE).
func firstField(out, prefix string, i int) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > i && f[0] == prefix {
			return f[i]
		}
	}
	return ""
}

// TestS3RoundTripAndDryRun backs up to a real S3 server (SeaweedFS), checks the dry runs
// change nothing, and restores into a new namespace.
func TestS3RoundTripAndDryRun(t *testing.T) {
	ctx := context.Background()
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", srv.URL("team/prod"))
	createNamespace(t, "s3-src", "one", "two")

	r := run(t, "create", "plan", "--include-namespaces", "s3-src", "--dry-run")
	if r.code != 0 || !hasRow(r.out, "v1/configmaps", "s3-src", "3") || !strings.Contains(r.out, "Nothing was written (--dry-run)") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, "list")
	if r.code != 0 || strings.Contains(r.out, "plan") {
		t.Fatalf("a dry run left a backup: %s%s", r.out, r.err)
	}
	r = run(t, "create", "s3-1", "-n", "s3-src", "--password-file", pwFile, "-o", "yaml")
	if r.code != 0 || !strings.Contains(r.out, "status: Completed") || !strings.Contains(r.out, "- s3-src") {
		t.Fatalf("create -n to S3: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, "restore", "s3-1", "--password-file", pwFile, "--namespace-mapping", "s3-src:s3-dst", "--dry-run")
	if r.code != 0 || !hasRow(r.out, "configmaps", "s3-dst", "one", "would-create") {
		t.Fatalf("restore dry run: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "s3-dst", metav1.GetOptions{}); err == nil {
		t.Fatal("a restore dry run created the namespace")
	}
	r = run(t, "restore", "s3-1", "--password-file", pwFile, "--namespace-mapping", "s3-src:s3-dst", "-o", "json")
	if r.code != 0 || !strings.Contains(r.out, `"created": `) || strings.Contains(r.out, `"failed"`) {
		t.Fatalf("restore from S3: exit %d\n%s%s", r.code, r.out, r.err)
	}
	cm, err := cs.CoreV1().ConfigMaps("s3-dst").Get(ctx, "two", metav1.GetOptions{})
	if err != nil || cm.Data["k"] != "two" {
		t.Fatalf("restored ConfigMap: %v %v", cm, err)
	}
	s, err := cs.CoreV1().Secrets("s3-dst").Get(ctx, "s", metav1.GetOptions{})
	if err != nil || string(s.Data["k"]) != "v" {
		t.Fatalf("restored Secret: %v", err)
	}
}
