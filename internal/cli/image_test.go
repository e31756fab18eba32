package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/registry"
)

// moverArchive writes a multi-arch mover image archive as `make release` does, of a fake binary.
func moverArchive(t *testing.T, ver string) string {
	t.Helper()
	ca, _, err := image.SystemCABundle("")
	if err != nil {
		t.Skipf("no CA bundle on this machine: %v", err)
	}
	var a image.Artifact
	amd, err := image.Build(image.Spec{Binary: []byte("amd64 mover"), CABundle: ca, Arch: "amd64", Version: ver})
	if err != nil {
		t.Fatal(err)
	}
	arm, err := image.Build(image.Spec{Binary: []byte("arm64 mover"), CABundle: ca, Arch: "arm64", Version: ver})
	if err != nil {
		t.Fatal(err)
	}
	if a.Index, err = image.Index(amd, arm); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pvbackup-mover.oci.tar")
	if err := image.WriteArchive(out, "ghcr.io/kubectl-pvbackup/pvbackup-mover:"+ver, a); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImagePushFromArchive pushes a release's archive into a registry that requires the docker
// config's credentials: the registry then holds the multi-arch index under the tag, which
// defaults to the plugin's version, and -o json says so.
func TestImagePushFromArchive(t *testing.T) {
	host := registry.Start(t, registry.Options{User: "ci", Password: "pw"})
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte("ci:pw")))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	archive := moverArchive(t, version.Version)

	stdout, stderr, code := run(t, "image", "push", host+"/mirror/pvbackup-mover", "--from-archive", archive, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var res pushResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := host + "/mirror/pvbackup-mover:" + version.Version
	if res.Image != want || strings.Join(res.Platforms, ",") != "linux/amd64,linux/arm64" || res.From != archive {
		t.Errorf("result %+v; want %s for linux/amd64,linux/arm64 from %s", res, want, archive)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("a warning for an archive of this very version: %s", stderr)
	}
	ref, err := name.ParseReference(want)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithAuth(&authn.Basic{Username: "ci", Password: "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != res.Digest || !desc.MediaType.IsIndex() {
		t.Errorf("registry has %s %s; want the index %s", desc.MediaType, desc.Digest, res.Digest)
	}

	// Another version's archive is pushed with a warning; no credentials: the registry's 401.
	_, stderr, code = run(t, "image", "push", host+"/mirror/old:v0", "--from-archive", moverArchive(t, "v0.0.1"))
	if code != 0 || !strings.Contains(stderr, "warning: the image is kubectl-pvbackup v0.0.1") {
		t.Errorf("another version: exit %d\n%s", code, stderr)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, stderr, code = run(t, "image", "push", host+"/mirror/x", "--from-archive", archive)
	if code == 0 || !strings.Contains(stderr, "401 Unauthorized") || !strings.Contains(stderr, "docker login") {
		t.Errorf("without credentials: exit %d\n%s", code, stderr)
	}
}

func TestImagePushBadInput(t *testing.T) {
	notMover := filepath.Join(t.TempDir(), "x.tar")
	if err := os.WriteFile(notMover, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "push", "pvbackup-mover"}, "names no registry"},
		{[]string{"image", "push", "r.example/m@sha256:" + strings.Repeat("0", 64)}, "not to a digest"},
		{[]string{"image", "push", "r.example/m", "--from-archive", notMover, "--ca-bundle", "/etc/ssl/certs/ca-certificates.crt"}, "--ca-bundle is for an image built from this plugin"},
		{[]string{"image", "push", "r.example/m", "--from-archive", notMover}, "unpack " + notMover},
	} {
		_, stderr, code := run(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %s; want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := run(t, "version", "--mover-image", "r.example/m:v1")
	if code != 0 || stdout != "kubectl-pvbackup "+version.Version+"\nmover image r.example/m:v1\n" {
		t.Errorf("exit %d: %q", code, stdout)
	}
	// $PVBACKUP_MOVER_IMAGE is the image create and restore run when --mover-image is not given.
	t.Setenv(EnvMoverImage, "mirror.example/m:v2")
	if stdout, _, code := run(t, "version"); code != 0 || !strings.HasSuffix(stdout, "\nmover image mirror.example/m:v2\n") {
		t.Errorf("with $%s: exit %d: %q", EnvMoverImage, code, stdout)
	}
	if stdout, _, code := run(t, "version", "--mover-image", "r.example/m:v1"); code != 0 || !strings.HasSuffix(stdout, "\nmover image r.example/m:v1\n") {
		t.Errorf("--mover-image over $%s: exit %d: %q", EnvMoverImage, code, stdout)
	}
	if _, stderr, code := run(t, "version", "--check", "--mover-pull-policy", "Sometimes"); code != 1 || !strings.Contains(stderr, `--mover-pull-policy="Sometimes"`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "version", "--check", "--mover-pull-secret", "a/b/c"); code != 1 || !strings.Contains(stderr, `--mover-pull-secret "a/b/c"`) {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
