//go:build integration

package schedule_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/schedule"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

func create(ctx context.Context, t *testing.T, kube kubernetes.Interface, o schedule.Object) {
	t.Helper()
	var err error
	switch x := o.Object.(type) {
	case *corev1.ServiceAccount:
		_, err = kube.CoreV1().ServiceAccounts(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = kube.RbacV1().ClusterRoles().Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = kube.RbacV1().Roles(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = kube.RbacV1().RoleBindings(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
	case *batchv1.CronJob:
		_, err = kube.BatchV1().CronJobs(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
	default:
		t.Fatalf("unexpected object %T", x)
	}
	if err != nil {
		t.Fatalf("create %T: %v", o.Object, err)
	}
}

// TestScheduleRightsOnControlPlane: on a real API server with RBAC, the printed objects are
// accepted as they are, doctor finds the CronJob and its ServiceAccount has every right (asked by
// SubjectAccessReview); with any one rule taken away, doctor names a right that rule granted.
// This is the fast half of the least-rights check; test/e2e runs the CronJob itself.
func TestScheduleRightsOnControlPlane(t *testing.T) {
	cp := controlplane.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, ns := range []string{"ops", "shop", "web"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := schedule.Config{Name: "nightly", Namespace: "ops", Cron: "0 2 * * *", Image: "mover:1", PullPolicy: corev1.PullIfNotPresent, Secret: "pvbackup-nightly",
		Location: "s3://b/p", Namespaces: []string{"shop", "web"}, Needs: []string{"resources", "needed-cluster", "volumes", "snapshots", "groups", "auto-groups"},
		CreateArgs: []string{"create"}, PruneArgs: []string{"prune"}, HistoryLimit: 3, Deadline: time.Hour}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	objs := c.Objects()
	for _, o := range objs {
		create(ctx, t, kube, o)
	}
	deps := doctor.Deps{Kube: kube, Snap: snapclient.NewForConfigOrDie(cp.Config), Discovery: kube.Discovery()}
	run := func() *doctor.Report {
		return doctor.Run(ctx, deps, doctor.Config{Namespaces: []string{"ops"}}, doctor.ScheduleSteps())
	}
	rep := run()
	for _, r := range rep.Checks {
		t.Logf("%-36s %-4s %s", r.Check, r.Status, r.Detail)
	}
	// The Secret is the user's to create: only its absence may fail.
	for _, r := range rep.Checks {
		if r.Status != doctor.OK && r.Check != "schedule ops/nightly: secret" {
			t.Fatalf("%s: %s %s", r.Check, r.Status, r.Detail)
		}
	}
	if len(rep.Checks) != 4 {
		t.Fatalf("checks: %+v", rep.Checks)
	}

	cluster, namespaced := c.Rules()
	start := time.Now()
	for i := range cluster {
		dropRule(ctx, t, kube, "", c, cluster, i, run)
	}
	for i := range namespaced {
		dropRule(ctx, t, kube, "web", c, namespaced, i, run)
	}
	t.Logf("%d rules taken away one at a time, each judged by doctor, in %s", len(cluster)+len(namespaced), time.Since(start).Round(time.Millisecond))
}

// dropRule replaces the ClusterRole (ns "") or ns's Role with rules minus rule i, checks that
// doctor fails naming a right of that rule, and puts the rule back (and waits until doctor is
// satisfied again: the authorizer sees RBAC changes through an informer, a moment later).
func dropRule(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string, c schedule.Config, rules []rbacv1.PolicyRule, i int, run func() *doctor.Report) {
	t.Helper()
	rule := rules[i]
	check := "schedule ops/nightly (cluster)"
	if ns != "" {
		check = "schedule ops/nightly in " + ns
	}
	result := func() doctor.Result {
		for _, r := range run().Checks {
			if r.Check == check {
				return r
			}
		}
		return doctor.Result{}
	}
	setRules(ctx, t, kube, ns, c, slices.Delete(slices.Clone(rules), i, i+1))
	var got doctor.Result
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = result()
		return got.Status == doctor.Fail, nil
	})
	if got.Status != doctor.Fail || !namesRule(got.Detail, rule) {
		t.Errorf("without rule %v in %q: %s %q", rule, ns, got.Status, got.Detail)
	}
	setRules(ctx, t, kube, ns, c, rules)
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return result().Status == doctor.OK, nil
	}); err != nil {
		t.Fatalf("rule %v put back, doctor still fails: %+v", rule, result())
	}
}

// namesRule reports whether detail names a right the rule grants ("list pods", "get pods/log").
func namesRule(detail string, r rbacv1.PolicyRule) bool {
	for _, v := range r.Verbs {
		for _, res := range r.Resources {
			name := res
			if res == "*" {
				name = "" // list of every type: doctor names the types it asks about
			}
			if strings.Contains(detail, fmt.Sprintf("%s %s", v, name)) {
				return true
			}
		}
	}
	return false
}

func setRules(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string, c schedule.Config, rules []rbacv1.PolicyRule) {
	t.Helper()
	name := "pvbackup-schedule:" + c.Namespace + ":" + c.Name
	var err error
	if ns == "" {
		var cr *rbacv1.ClusterRole
		if cr, err = kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); err == nil {
			cr.Rules = rules
			_, err = kube.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{})
		}
	} else {
		var r *rbacv1.Role
		if r, err = kube.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			r.Rules = rules
			_, err = kube.RbacV1().Roles(ns).Update(ctx, r, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
