//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
)

// The lab's registries (hack/lab-registry.sh): an open one and one behind basic auth, on the
// gateway address, from which the node's containerd pulls over plain HTTP. Every test pushes the
// mover image under a repository of its own, so that IfNotPresent really pulls (a reference the
// node has not seen) and the pull of one test is never served by another's.

type labRegistry struct {
	open, auth     string
	user, password string
	archive        string // the e2e mover image as an OCI layout tarball (hack/e2e.sh)
}

func newLabRegistry(t *testing.T) labRegistry {
	t.Helper()
	return labRegistry{
		open: env(t, "PVBACKUP_REGISTRY"), auth: env(t, "PVBACKUP_REGISTRY_AUTH"),
		user: env(t, "PVBACKUP_REGISTRY_USER"), password: env(t, "PVBACKUP_REGISTRY_PASSWORD"),
		archive: env(t, "PVBACKUP_MOVER_ARCHIVE"),
	}
}

// dockerConfig is a docker config (config.json) with the credentials of host.
func dockerConfig(host, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth))
}

// push pushes the e2e mover image archive to ref with `image push --from-archive`, with the lab
// registry's credentials in a docker config of the test's own.
func (r labRegistry) push(t *testing.T, ref string, args ...string) {
	t.Helper()
	res := runPluginWithDockerConfig(t, r, append([]string{"image", "push", ref, "--from-archive", r.archive}, args...)...)
	if res.code != 0 {
		t.Fatalf("image push %s: exit %d\n%s", ref, res.code, res.stderr)
	}
}

// runPluginWithDockerConfig runs the plugin with DOCKER_CONFIG naming the lab registries' credentials.
func runPluginWithDockerConfig(t *testing.T, r labRegistry, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), dockerConfig(r.auth, r.user, r.password), 0o600); err != nil {
		t.Fatal(err)
	}
	return runPluginEnv(t, 5*time.Minute, []string{"DOCKER_CONFIG=" + dir}, args...)
}

// runPluginEnv is runPlugin with more environment variables (t.Setenv would end t.Parallel).
func runPluginEnv(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	bin := plugin(t) // built once, on the first call: not within this command's timeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run plugin %v: %v", args, err)
	}
	t.Logf("kubectl-pvbackup %s: exit %d in %s\nstderr:\n%s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), r.stderr)
	return r
}

// pullSecret creates a docker-registry Secret for host in a namespace of its own (the movers run
// elsewhere: the plugin copies it to them) and returns NAMESPACE/NAME.
func (c *Cluster) pullSecret(t *testing.T, host, user, password string) string {
	t.Helper()
	ns := c.Namespace(t, "e2e-regcred")
	_, err := c.Kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(host, user, password)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns + "/regcred"
}

// registryMover are the mover flags of a registry image, pulled IfNotPresent.
func registryMover(ref string, extra ...string) []string {
	return append([]string{"--mover-image", ref, "--mover-pull-policy", "IfNotPresent", "--mover-privileged"}, extra...)
}

// roundTrip backs up a claim with movers args, restores it into another namespace with the same
// movers and reads the file back there.
func (c *Cluster) roundTrip(t *testing.T, ns string, mover []string) {
	t.Helper()
	token := "pvbackup-" + randomSuffix()
	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", "echo "+token+" > /data/f && sync")
	loc, name := c.location(t), "reg-"+randomSuffix()
	r := runPlugin(t, 8*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs"}, mover...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	c.noLeftovers(t, name)
	copyNS := ns + "-copy"
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
	r = runPlugin(t, 8*time.Minute, append([]string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + copyNS}, mover...)...)
	if r.code != 0 {
		t.Fatalf("restore into %s: exit %d\n%s\n%s", copyNS, r.code, r.stdout, c.Diagnose(copyNS))
	}
	if got := strings.TrimSpace(c.RunJob(t, copyNS, "read", "data", 2*time.Minute, "cat", "/data/f")); got != token {
		t.Fatalf("restored /data/f = %q, want %q", got, token)
	}
	c.noLeftovers(t, name)
}

// moverPulled says whether the node pulled ref for a pod of ns (the kubelet's Pulled event).
func (c *Cluster) moverPulled(t *testing.T, ns, ref string) bool {
	t.Helper()
	evs, err := c.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Pulled"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if strings.Contains(e.Message, ref) && strings.Contains(e.Message, "Successfully pulled") {
			return true
		}
	}
	return false
}

// TestRegistryOpen: movers of a backup and a restore pull the mover image from the open lab
// registry (IfNotPresent), as a user's cluster pulls the published image.
func TestRegistryOpen(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	reg := newLabRegistry(t)
	ns := c.Namespace(t, "e2e-reg-open")
	ref := reg.open + "/" + ns + "/pvbackup-mover:e2e"
	reg.push(t, ref)
	c.roundTrip(t, ns, registryMover(ref))
	if !c.moverPulled(t, ns, ref) {
		t.Errorf("no mover of %s pulled %s: %s", ns, ref, c.Diagnose(ns))
	}
}

// TestRegistryAuthenticated: movers pull from the registry that requires credentials through
// --mover-pull-secret (a Secret of another namespace, copied to each mover and removed with it);
// doctor's probe and version --check pull the same way.
func TestRegistryAuthenticated(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	reg := newLabRegistry(t)
	ns := c.Namespace(t, "e2e-reg-auth")
	// A reference per user of the image: IfNotPresent pulls each one once, with the credentials.
	ref, checkRef, probeRef := reg.auth+"/"+ns+"/pvbackup-mover:e2e", reg.auth+"/"+ns+"/check:e2e", reg.auth+"/"+ns+"/probe:e2e"
	for _, r := range []string{ref, checkRef, probeRef} {
		reg.push(t, r)
	}
	secret := c.pullSecret(t, reg.auth, reg.user, reg.password)

	c.roundTrip(t, ns, registryMover(ref, "--mover-pull-secret", secret))
	if !c.moverPulled(t, ns, ref) {
		t.Errorf("no mover of %s pulled %s: %s", ns, ref, c.Diagnose(ns))
	}
	c.noSecretCopies(t, ns, ns+"-copy")

	r := runPlugin(t, 3*time.Minute, "version", "--check", "-n", ns, "--mover-image", checkRef, "--mover-pull-secret", secret, "-o", "json")
	if r.code != 0 {
		t.Fatalf("version --check: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	var v struct {
		Check []struct {
			Arch    string
			OK      bool
			Version string
			Seconds float64
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || len(v.Check) == 0 || !v.Check[0].OK || v.Check[0].Version == "" {
		t.Fatalf("version --check: %v %s", err, r.stdout)
	}
	t.Logf("MEASURE version --check with a pull secret: linux/%s pulled and ran %s in %.1fs", v.Check[0].Arch, v.Check[0].Version, v.Check[0].Seconds)
	if !c.moverPulled(t, ns, checkRef) {
		t.Errorf("version --check did not pull %s in %s", checkRef, ns)
	}

	code, rep := doctorRun(t, 5*time.Minute, append([]string{"-n", ns, "--location", c.location(t), "--storage-class", c.StorageClass},
		registryMover(probeRef, "--mover-pull-secret", secret)...)...)
	c.wantHealthy(t, code, rep)
	c.noProbeLeft(t, rep)
	c.noSecretCopies(t, ns)
}

// noSecretCopies: no copy of a pull Secret is left in the namespaces (other tests' runs may have
// theirs in the meantime).
func (c *Cluster) noSecretCopies(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		list, err := c.Kube.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-pvbackup"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, "pvb-pull-") {
				t.Errorf("pull Secret copy %s/%s left behind", s.Namespace, s.Name)
			}
		}
	}
}

// TestRegistryWrongPullSecret: a pull Secret the registry refuses fails the backup's mover at its
// first pull, in seconds, with the registry's answer (401), not after a timeout; version --check
// says the same.
func TestRegistryWrongPullSecret(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	reg := newLabRegistry(t)
	ns := c.Namespace(t, "e2e-reg-wrong")
	ref := reg.auth + "/" + ns + "/pvbackup-mover:e2e"
	reg.push(t, ref)
	secret := c.pullSecret(t, reg.auth, reg.user, "not-"+reg.password)

	r := runPlugin(t, 3*time.Minute, "version", "--check", "-n", ns, "--mover-image", ref, "--mover-pull-secret", secret, "--timeout", "5m")
	if r.code != 1 || !strings.Contains(r.stdout, "401 Unauthorized") || !strings.Contains(r.stdout, "ErrImagePull") {
		t.Errorf("version --check with a wrong secret: exit %d\n%s", r.code, r.stdout)
	}
	t.Logf("MEASURE version --check with a wrong pull secret failed in %s", r.took.Round(10*time.Millisecond))

	// doctor's probe pulls as the movers do, and says what to do.
	code, rep := doctorRun(t, 3*time.Minute, append([]string{"-n", ns, "--location", c.location(t), "--storage-class", c.StorageClass, "--timeout", "5m"},
		registryMover(ref, "--mover-pull-secret", secret)...)...)
	step := "probe " + c.StorageClass + ": mover writes and reaches the location"
	wantVerdict(t, code, rep, step, doctor.Fail, "401 Unauthorized")
	if fix := check(t, rep, step).Fix; !strings.Contains(fix, "--mover-pull-secret") {
		t.Errorf("doctor's fix for a refused pull: %q", fix)
	}
	t.Logf("MEASURE doctor's probe mover with a wrong pull secret failed in %.2fs", check(t, rep, step).Seconds)
	c.noProbeLeft(t, rep)

	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", "echo x > /data/f")
	name := "wrong-" + randomSuffix()
	// --timeout 5m: a failure within seconds is the registry's answer, not the step timeout.
	r = runPlugin(t, 4*time.Minute, append([]string{"create", name, "--to", c.location(t), "--include-namespaces", ns, "--volumes", "fs", "--timeout", "5m", "-o", "json"},
		registryMover(ref, "--mover-pull-secret", secret)...)...)
	if r.code == 0 {
		t.Fatalf("create with a wrong pull secret succeeded")
	}
	out := r.stdout + r.stderr
	for _, want := range []string{"ErrImagePull", "401 Unauthorized", reg.auth} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not name %q:\n%s", want, out)
		}
	}
	t.Logf("MEASURE create with a wrong pull secret failed in %s (plan, preflight, mover)", r.took.Round(10*time.Millisecond))
	if r.took > 90*time.Second {
		t.Errorf("create took %s to fail; want seconds, not a timeout", r.took)
	}
	c.noLeftovers(t, name)
	c.noSecretCopies(t, ns)
}

// TestImagePushThenBackup: `image push` builds the mover image from the plugin's own binary into
// the authenticated registry (credentials from the docker config), and a backup runs with it.
func TestImagePushThenBackup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	reg := newLabRegistry(t)
	ns := c.Namespace(t, "e2e-image-push")
	ref := reg.auth + "/" + ns + "/self:e2e"
	r := runPluginWithDockerConfig(t, reg, "image", "push", ref, "-o", "json")
	if r.code != 0 {
		t.Fatalf("image push: exit %d\n%s", r.code, r.stderr)
	}
	var pushed struct {
		Image, Digest string
		Platforms     []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &pushed); err != nil || pushed.Image != ref || !strings.HasPrefix(pushed.Digest, "sha256:") || len(pushed.Platforms) != 1 {
		t.Fatalf("image push printed %s (%v)", r.stdout, err)
	}
	t.Logf("MEASURE image push (built from the plugin) in %s", r.took.Round(10*time.Millisecond))

	secret := c.pullSecret(t, reg.auth, reg.user, reg.password)
	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", "echo pushed > /data/f")
	name := "pushed-" + randomSuffix()
	r = runPlugin(t, 8*time.Minute, append([]string{"create", name, "--to", c.location(t), "--include-namespaces", ns, "--volumes", "fs"},
		registryMover(ref, "--mover-pull-secret", secret)...)...)
	if r.code != 0 {
		t.Fatalf("create with the pushed image: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	if !c.moverPulled(t, ns, ref) {
		t.Errorf("the mover did not pull %s", ref)
	}
	c.noLeftovers(t, name)
}
