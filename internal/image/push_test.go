package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/registry"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		ref, want, err string
	}{
		{ref: "registry.example.com/team/pvbackup-mover:v1", want: "registry.example.com/team/pvbackup-mover:v1"},
		{ref: "registry.example.com/pvbackup-mover", want: "registry.example.com/pvbackup-mover:v9.9.9"},
		{ref: "10.244.0.1:5000/pvbackup/mover", want: "10.244.0.1:5000/pvbackup/mover:v9.9.9"},
		{ref: "localhost/mover:x", want: "localhost/mover:x"},
		{ref: "pvbackup-mover:v1", err: "names no registry"},
		{ref: "team/pvbackup-mover", err: "names no registry"},
		{ref: "registry.example.com/m@sha256:" + strings.Repeat("a", 64), err: "not to a digest"},
		{ref: "registry.example.com/UPPER", err: "not an image reference"},
	} {
		got, err := ParseTarget(tc.ref, false, "v9.9.9")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v; want an error with %q", tc.ref, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.ref, err)
		case tc.err == "" && got.Name() != tc.want:
			t.Errorf("%s: %s; want %s", tc.ref, got.Name(), tc.want)
		}
	}
}

// staticKeychain gives one user and password to every registry.
type staticKeychain struct{ user, password string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// TestPushWithCredentials pushes a multi-arch index to a registry that requires basic auth: with
// the right credentials it is there under its digest, with wrong ones the error names the
// registry's answer and where the credentials come from.
func TestPushWithCredentials(t *testing.T) {
	host := registry.Start(t, registry.Options{User: "u", Password: "right"})
	idx := multiArch(t)
	tag, err := ParseTarget(host+"/pvbackup/mover:test", false, "unused")
	if err != nil {
		t.Fatal(err)
	}
	var progress int
	got, err := Push(context.Background(), tag, Artifact{Index: idx}, PushOptions{
		Keychain: staticKeychain{"u", "right"}, Progress: func(done, total int64) { progress++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := digest(t, idx); got != want {
		t.Errorf("pushed %s; want %s", got, want)
	}
	if progress == 0 {
		t.Error("no progress was reported")
	}
	desc, err := remote.Get(tag, remote.WithAuth(&authn.Basic{Username: "u", Password: "right"}))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != got || !desc.MediaType.IsIndex() {
		t.Errorf("the registry has %s (%s); want the index %s", desc.Digest, desc.MediaType, got)
	}

	_, err = Push(context.Background(), tag, Artifact{Index: idx}, PushOptions{Keychain: staticKeychain{"u", "wrong"}})
	for _, want := range []string{"answered 401 Unauthorized", "docker login"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("push with a wrong password: %v; want %q", err, want)
		}
	}
}

// TestPushReadsDockerConfig: without a keychain of its own, Push takes the registry's
// credentials from the docker config ($DOCKER_CONFIG/config.json), as docker and crane do.
func TestPushReadsDockerConfig(t *testing.T) {
	host := registry.Start(t, registry.Options{User: "robot", Password: "s3cret"})
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("robot:s3cret"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	tag, err := name.NewTag(host + "/mover:cfg")
	if err != nil {
		t.Fatal(err)
	}
	img := mustBuild(t, spec("amd64"))
	if _, err := Push(context.Background(), tag, Artifact{Image: img}, PushOptions{}); err != nil {
		t.Fatalf("push with the docker config's credentials: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials
	if _, err := Push(context.Background(), tag, Artifact{Image: img}, PushOptions{}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("push without credentials: %v; want 401", err)
	}
}
