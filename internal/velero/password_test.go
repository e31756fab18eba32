package velero

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestSecretFrom: the Secret's password when the cluster has it; the default when it has none or
// the user may not read it; an error when the cluster cannot be asked.
func TestSecretFrom(t *testing.T) {
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "velero", Name: PasswordSecret},
		Data: map[string][]byte{PasswordSecretKey: []byte("set-by-the-admin\n")}}
	gr := schema.GroupResource{Resource: "secrets"}
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		fail    error
		want    string
		err     string
	}{
		{name: "secret", objects: []runtime.Object{secret}, want: "set-by-the-admin"},
		{name: "no secret", want: DefaultPassword},
		{name: "forbidden", fail: apierrors.NewForbidden(gr, PasswordSecret, errors.New("rbac")), want: DefaultPassword},
		{name: "unreachable", fail: errors.New("connection refused"), err: "read Secret velero/velero-repo-credentials (Velero's repository password): connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewSimpleClientset(tc.objects...)
			if tc.fail != nil {
				client.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.fail })
			}
			p, err := ResolvePassword(ctx, "", SecretFrom(client.CoreV1(), "velero"))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || p.Value != tc.want {
				t.Fatalf("%+v %v, want %q", p, err, tc.want)
			}
		})
	}
}
