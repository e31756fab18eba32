package velero

import (
	"context"
	"fmt"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// DefaultPassword is the repository password Velero uses when nobody set one: Velero creates its
// Secret velero-repo-credentials with it (pkg/repository/keys/keys.go, encryptionKey, v1.18.3).
const DefaultPassword = "static-passw0rd"

// Where Velero keeps the password it uses (pkg/repository/keys/keys.go).
const (
	PasswordSecret    = "velero-repo-credentials"
	PasswordSecretKey = "repository-password"
)

// Password is a Velero repository password and where it came from, for messages.
type Password struct {
	Value  string
	Source string
}

// SecretReader reads the Secret velero-repo-credentials of Velero's namespace: ok is false when
// the cluster has no such Secret or the user may not read it (the default is then tried).
type SecretReader func(ctx context.Context) (password string, ok bool, err error)

// ResolvePassword picks the repository password: the file when given, else the Secret when
// readSecret finds it, else Velero's built-in default. Velero trims white space around the
// Secret's value; so does this.
func ResolvePassword(ctx context.Context, file string, readSecret SecretReader) (Password, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Password{}, fmt.Errorf("--velero-password-file: %w", err)
		}
		p := strings.TrimSpace(string(b))
		if p == "" {
			return Password{}, fmt.Errorf("--velero-password-file %s is empty", file)
		}
		return Password{Value: p, Source: "--velero-password-file " + file}, nil
	}
	if readSecret != nil {
		p, ok, err := readSecret(ctx)
		if err != nil {
			return Password{}, err
		}
		if p = strings.TrimSpace(p); ok && p != "" {
			return Password{Value: p, Source: "Secret " + PasswordSecret + " (key " + PasswordSecretKey + ")"}, nil
		}
	}
	return Password{Value: DefaultPassword, Source: "Velero's built-in default password"}, nil
}

// SecretFrom reads the Secret velero-repo-credentials of Velero's namespace (the Backup's
// metadata.namespace, "velero" by default) with client. A cluster without it, or a user who may not
// read it, is not an error: the default is tried then.
func SecretFrom(client corev1client.SecretsGetter, namespace string) SecretReader {
	return func(ctx context.Context) (string, bool, error) {
		s, err := client.Secrets(namespace).Get(ctx, PasswordSecret, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("read Secret %s/%s (Velero's repository password): %w", namespace, PasswordSecret, err)
		}
		v, ok := s.Data[PasswordSecretKey]
		return string(v), ok, nil
	}
}
