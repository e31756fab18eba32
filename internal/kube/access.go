package kube

import (
	"context"
	"sync"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// Access answers whether the caller may do something, by SelfSubjectAccessReview (which every
// authenticated user may create), remembering each answer: the engines ask before they read what
// a namespace admin usually may not (cluster-scoped objects), so that a right the user lacks is
// a line in the plan rather than a failed request per object.
type Access struct {
	kube kubernetes.Interface
	mu   sync.Mutex
	seen map[authzv1.ResourceAttributes]bool
}

// NewAccess asks kube's apiserver.
func NewAccess(kube kubernetes.Interface) *Access {
	return &Access{kube: kube, seen: map[authzv1.ResourceAttributes]bool{}}
}

// Allowed reports whether the caller may verb gr in ns ("" for cluster-scoped resources or every
// namespace). An error means the apiserver did not answer.
func (a *Access) Allowed(ctx context.Context, verb string, gr schema.GroupResource, ns string) (bool, error) {
	ra := authzv1.ResourceAttributes{Verb: verb, Group: gr.Group, Resource: gr.Resource, Namespace: ns}
	a.mu.Lock()
	ok, known := a.seen[ra]
	a.mu.Unlock()
	if known {
		return ok, nil
	}
	res, err := a.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
		Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	a.seen[ra] = res.Status.Allowed
	a.mu.Unlock()
	return res.Status.Allowed, nil
}
