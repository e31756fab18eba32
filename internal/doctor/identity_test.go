package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// --mover-service-account must exist in every namespace in scope; its workload identity is named.
func TestCheckServiceAccount(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backup-mover", Namespace: "shop",
			Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/shop-backup"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backup-mover", Namespace: "blog"}},
	)
	cfg := &Config{Namespaces: []string{"shop", "blog", "wiki"}, Mover: volumes.MoverConfig{ServiceAccount: "backup-mover"}}
	got := checkServiceAccount(context.Background(), &Deps{Kube: kube}, cfg)
	want := []struct {
		status Status
		detail string
	}{
		{OK, "EKS IRSA (eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/shop-backup)"},
		{OK, "no workload identity annotation"},
		{Fail, "ServiceAccount wiki/backup-mover does not exist: the movers of wiki cannot start"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Status != w.status || !strings.Contains(got[i].Detail, w.detail) {
			t.Errorf("result %d = %s %q; want %s containing %q", i, got[i].Status, got[i].Detail, w.status, w.detail)
		}
	}
	if r := checkServiceAccount(context.Background(), &Deps{Kube: kube}, &Config{Namespaces: []string{"shop"}}); r != nil {
		t.Errorf("without --mover-service-account: %+v; want no check", r)
	}
}
