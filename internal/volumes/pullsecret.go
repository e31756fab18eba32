package volumes

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PullSecretRef names the user's docker-registry Secret (--mover-pull-secret NAMESPACE/NAME).
//
// Without it, mover pods pull as any pod of their namespace does: with the imagePullSecrets of the
// namespace's ServiceAccount (or --mover-service-account's), which Kubernetes adds to the pod, and
// the nodes' own credentials. That is the default because it copies no credentials between
// namespaces and is how a cluster's admins already give its namespaces a private registry. With
// it, each mover gets its own copy of the Secret in its namespace, named in its pod's
// imagePullSecrets (the ServiceAccount's are then not added), deleted with the mover.
type PullSecretRef struct {
	Namespace, Name string
}

func (r PullSecretRef) String() string { return r.Namespace + "/" + r.Name }

// maxPullSecretBytes bounds the Secret read from the cluster (a docker config is a few KiB).
const maxPullSecretBytes = 256 << 10

// ReadPullSecret reads the user's pull Secret and checks that it is a docker-registry Secret the
// kubelet can use.
func ReadPullSecret(ctx context.Context, kube kubernetes.Interface, ref PullSecretRef) (*corev1.Secret, error) {
	s, err := kube.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read --mover-pull-secret %s: %w", ref, err)
	}
	var key string
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		key = corev1.DockerConfigJsonKey
	case corev1.SecretTypeDockercfg:
		key = corev1.DockerConfigKey
	default:
		return nil, fmt.Errorf("--mover-pull-secret %s is of type %q: make it with `kubectl create secret docker-registry` (type %s)", ref, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	if len(s.Data[key]) == 0 {
		return nil, fmt.Errorf("--mover-pull-secret %s has no %s", ref, key)
	}
	if n := len(s.Data[key]); n > maxPullSecretBytes {
		return nil, fmt.Errorf("--mover-pull-secret %s: %s is %d bytes, more than a docker config's %d", ref, key, n, maxPullSecretBytes)
	}
	return &corev1.Secret{Type: s.Type, Data: map[string][]byte{key: s.Data[key]}}, nil
}

// pullSecrets reads the user's pull Secret once per run, for every mover to copy.
type pullSecrets struct {
	once   sync.Once
	secret *corev1.Secret
	err    error
}

func (p *pullSecrets) get(ctx context.Context, kube kubernetes.Interface, ref PullSecretRef) (*corev1.Secret, error) {
	p.once.Do(func() { p.secret, p.err = ReadPullSecret(ctx, kube, ref) })
	return p.secret, p.err
}

// PullSecretName is the task's copy of the pull Secret.
func (t Task) PullSecretName() string { return t.name("pull") }

// PullSecretSpec is the task's copy of src, labelled like every temporary object of the task.
func (t Task) PullSecretSpec(src *corev1.Secret) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: t.meta(t.PullSecretName()), Type: src.Type, Data: src.Data}
}

// imagePullSecrets are what a mover pod of t names.
func (t Task) imagePullSecrets(c *MoverConfig) []corev1.LocalObjectReference {
	if c.PullSecret == nil {
		return nil
	}
	return []corev1.LocalObjectReference{{Name: t.PullSecretName()}}
}

// createPullSecret copies the user's pull Secret into t's namespace when one is configured.
func (e *engine) createPullSecret(ctx context.Context, t Task, created *createdObjects) error {
	ref := e.cfg.Mover.PullSecret
	if ref == nil {
		return nil
	}
	src, err := e.pull.get(ctx, e.d.Kube, *ref)
	if err != nil {
		return err
	}
	if _, err := e.d.Kube.CoreV1().Secrets(t.Namespace).Create(ctx, t.PullSecretSpec(src), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("copy --mover-pull-secret %s into %s as %s: %w", ref, t.Namespace, t.PullSecretName(), err)
	}
	created.pullSecret = true
	return nil
}
