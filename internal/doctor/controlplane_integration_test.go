//go:build integration

package doctor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	authnv1 "k8s.io/api/authentication/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

func deps(cfg *rest.Config) doctor.Deps {
	kube := kubernetes.NewForConfigOrDie(cfg)
	return doctor.Deps{Kube: kube, Snap: snapclient.NewForConfigOrDie(cfg), Discovery: kube.Discovery()}
}

func results(rep *doctor.Report) map[string]doctor.Result {
	out := map[string]doctor.Result{}
	for _, r := range rep.Checks {
		out[r.Check] = r
	}
	return out
}

// On a real kube-apiserver and controller-manager: Pod Security and ResourceQuota admission judge
// the mover pod in a dry run, SelfSubjectAccessReviews answer for a ServiceAccount with a Role, the
// controller's Lease is found and judged by its renewal, and create's preflight is timed.
func TestDoctorOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := func(name string, labels map[string]string) {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Pods are refused until the controller-manager made the namespace's default ServiceAccount.
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatalf("no default ServiceAccount in %s: %v", name, err)
		}
	}
	ns("restricted", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	ns("quota", nil)
	ns("open", nil)
	if _, err := kube.CoreV1().ResourceQuotas("quota").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "tiny"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsMemory: resource.MustParse("64Mi")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		q, err := kube.CoreV1().ResourceQuotas("quota").Get(ctx, "tiny", metav1.GetOptions{})
		return err == nil && len(q.Status.Hard) > 0, nil
	}); err != nil {
		t.Fatalf("the quota controller did not compute quota/tiny: %v", err)
	}

	mc := volumes.MoverConfig{Image: "mover:1", Privileged: true}
	cfg := doctor.Config{Namespaces: []string{"restricted", "quota", "open"}, Mover: mc}
	rep := doctor.Run(ctx, deps(cp.Config), cfg, doctor.StaticSteps())
	got := results(rep)
	for _, r := range rep.Checks {
		t.Logf("%-32s %-4s %5.3fs %s", r.Check, r.Status, r.Seconds, r.Detail)
	}
	for check, want := range map[string]struct {
		status doctor.Status
		detail string
	}{
		"pod security in restricted": {doctor.Fail, `violates PodSecurity "restricted`},
		"resource quota in quota":    {doctor.Fail, "ResourceQuota tiny: requests.memory: the mover needs 256Mi, 64Mi of 64Mi free"},
		"pod security in open":       {doctor.OK, "admitted"},
		"resource quota in open":     {doctor.OK, "no ResourceQuota"},
		"rights in open":             {doctor.OK, "rights checked as admin"},
		"snapshot API":               {doctor.Warn, "serves no snapshot.storage.k8s.io"},
	} {
		if r := got[check]; r.Status != want.status || !strings.Contains(r.Detail, want.detail) {
			t.Errorf("%s: %s %q, want %s with %q", check, r.Status, r.Detail, want.status, want.detail)
		}
	}
	if pods, _ := kube.CoreV1().Pods("open").List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Errorf("the dry run stored %d pods", len(pods.Items))
	}

	// A ServiceAccount that may only read pods in "open".
	if _, err := kube.CoreV1().ServiceAccounts("open").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().Roles("open").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().RoleBindings("open").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: "open"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := kube.CoreV1().ServiceAccounts("open").CreateToken(ctx, "reader", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saCfg := rest.CopyConfig(cp.Config)
	saCfg.BearerToken = tok.Status.Token
	rep = doctor.Run(ctx, deps(saCfg), doctor.Config{Namespaces: []string{"open"}, Mover: mc}, doctor.StaticSteps())
	got = results(rep)
	if r := got["rights in open"]; r.Status != doctor.Fail || !strings.Contains(r.Detail, "as system:serviceaccount:open:reader") || !strings.Contains(r.Detail, "create jobs.batch") || strings.Contains(r.Detail, "list pods") {
		t.Errorf("rights of the reader: %+v", r)
	}
	if r := got["pod security in open"]; r.Status != doctor.OK || !strings.Contains(r.Detail, "judged from the namespace's labels") {
		t.Errorf("pod security without the right to dry-run: %+v", r)
	}

	// The snapshot controller's Lease, renewed and then stale.
	leases := kube.CoordinationV1().Leases("kube-system")
	if _, err := leases.Create(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: doctor.ControllerLease},
		Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To("host-1"), LeaseDurationSeconds: ptr.To(int32(15)), RenewTime: &metav1.MicroTime{Time: time.Now()}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// This control plane serves no snapshot API, so the controller step says nothing; judging a
	// Lease is the unit tests' job. What a real apiserver proves is the lookup: a field selector
	// across namespaces.
	d := deps(cp.Config)
	l, err := d.Kube.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + doctor.ControllerLease})
	if err != nil || len(l.Items) != 1 || l.Items[0].Namespace != "kube-system" {
		t.Errorf("lease lookup across namespaces: %v %v", err, l)
	}

	// create's preflight of a plan with one fs volume in "open", timed.
	start := time.Now()
	rep = doctor.CreatePreflight(ctx, deps(cp.Config), doctor.Config{Mover: mc}, doctor.CreatePlan{Namespaces: []string{"open"},
		Volumes: []catalog.Volume{{Namespace: "open", PVC: "data", Mode: "fs"}}})
	took := time.Since(start)
	for _, r := range rep.Checks {
		t.Logf("preflight %-28s %-4s %5.3fs %s", r.Check, r.Status, r.Seconds, r.Detail)
	}
	t.Logf("create's preflight: %d checks in %s", len(rep.Checks), took.Round(time.Millisecond))
	if rep.Status == doctor.Fail {
		t.Errorf("preflight failed: %s", rep.Summary())
	}
	if took > 2*time.Second {
		t.Errorf("preflight took %s, want well under 2s", took)
	}
}
