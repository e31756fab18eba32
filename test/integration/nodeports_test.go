//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestRestoreExistingNodePortService: with --preserve-nodeports, a Service that still exists is
// skipped (none) or updated (update) — the apiserver refuses the create with "provided port is
// already allocated" before it would say AlreadyExists — and a dry run into another namespace
// warns that the port is held, which the real restore then fails with the way out.
func TestRestoreExistingNodePortService(t *testing.T) {
	ctx := context.Background()
	ns := "nodeports"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, ns) })
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "edge", Labels: map[string]string{"v": "1"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "edge"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := svc.Spec.Ports[0].NodePort
	loc := "file://" + t.TempDir()
	t.Setenv("PVBACKUP_PASSWORD", "correct horse battery staple")
	if r := run(t, "create", "np-1", "--to", loc, "--include-namespaces", ns, "--include-resources", "services"); r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	svc.Labels["v"] = "2"
	if _, err := cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := run(t, "restore", "np-1", "--from", loc, "--preserve-nodeports")
	if r.code != 0 || !hasRow(r.out, "services", ns, "edge", "skipped", "exists") {
		t.Fatalf("policy none: want the Service skipped as existing, exit 0; got exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, "restore", "np-1", "--from", loc, "--preserve-nodeports", "--existing-resource-policy", "update")
	if r.code != 0 || !hasRow(r.out, "services", ns, "edge", "updated") {
		t.Fatalf("policy update: want the Service updated, exit 0; got exit %d\n%s%s", r.code, r.out, r.err)
	}
	got, err := cs.CoreV1().Services(ns).Get(ctx, "edge", metav1.GetOptions{})
	if err != nil || got.Labels["v"] != "1" || got.Spec.Ports[0].NodePort != port {
		t.Fatalf("after update: labels %v nodePort %d (want v=1, %d), %v", got.Labels, got.Spec.Ports[0].NodePort, port, err)
	}

	copyNS := ns + "-copy"
	t.Cleanup(func() { deleteNamespace(t, copyNS) })
	held := fmt.Sprintf("nodePort %d is held by Service %s/edge", port, ns)
	r = run(t, "restore", "np-1", "--from", loc, "--preserve-nodeports", "--namespace-mapping", ns+":"+copyNS, "--dry-run")
	if r.code != 0 || !strings.Contains(r.out, "warning: "+held) {
		t.Fatalf("dry run into %s: want a warning %q, exit 0; got exit %d\n%s%s", copyNS, held, r.code, r.out, r.err)
	}
	r = run(t, "restore", "np-1", "--from", loc, "--preserve-nodeports", "--namespace-mapping", ns+":"+copyNS)
	if r.code != 2 || !strings.Contains(r.out, "restore without --preserve-nodeports to get new ones") {
		t.Fatalf("restore into %s: want the Service failed with the way out, exit 2; got exit %d\n%s%s", copyNS, r.code, r.out, r.err)
	}
}
