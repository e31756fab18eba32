package volumes

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
)

const dockerConfig = `{"auths":{"10.244.0.1:5001":{"auth":"dTpw"}}}`

func userPullSecret(typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "regcred"}, Type: typ,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockerConfig), "other": []byte("not copied")}}
}

// createdSecrets are the Secrets the engine created, by namespace/name.
func createdSecrets(s *sim) map[string]*corev1.Secret {
	out := map[string]*corev1.Secret{}
	for _, a := range s.kube.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "secrets" {
			sec := c.GetObject().(*corev1.Secret)
			out[sec.Namespace+"/"+sec.Name] = sec
		}
	}
	return out
}

// TestPullSecretCopiedPerMover: with --mover-pull-secret, each mover's pod names a labelled copy
// of the user's docker-registry Secret in its own namespace (the docker config only), and the copy
// goes with the mover; the user's Secret stays.
func TestPullSecretCopiedPerMover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"), userPullSecret(corev1.SecretTypeDockerConfigJson))
	s.run(ctx)
	cfg := testConfig(ModeAuto)
	cfg.Mover.PullSecret = &PullSecretRef{Namespace: "ops", Name: "regcred"}
	if _, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg, []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1")}); err != nil {
		t.Fatal(err)
	}
	pod := s.jobs[0].Spec.Template.Spec
	if len(pod.ImagePullSecrets) != 1 || !strings.HasPrefix(pod.ImagePullSecrets[0].Name, "pvb-pull-") {
		t.Fatalf("imagePullSecrets %v; want the run's copy", pod.ImagePullSecrets)
	}
	copied := createdSecrets(s)["app/"+pod.ImagePullSecrets[0].Name]
	if copied == nil {
		t.Fatalf("no copy of the pull Secret was created in app: %v", createdSecrets(s))
	}
	if copied.Type != corev1.SecretTypeDockerConfigJson || string(copied.Data[corev1.DockerConfigJsonKey]) != dockerConfig || len(copied.Data) != 1 {
		t.Errorf("copy: type %s data %v", copied.Type, copied.Data)
	}
	if copied.Labels[LabelManagedBy] != ManagedBy || copied.Labels[LabelBackup] != "b1" {
		t.Errorf("copy labels %v: cleanup would not find it", copied.Labels)
	}
	if left := leftovers(t, s); len(left) != 1 || left[0] != "secret/regcred" {
		t.Errorf("left behind %v; want the user's secret/regcred only", left)
	}
}

// TestPullSecretRefusedFailsFast: a registry that refuses the credentials fails the mover at the
// kubelet's retry (the first attempt may have been made before the kubelet had the copied Secret),
// naming the registry's answer, in seconds, and the copy is removed.
func TestPullSecretRefusedFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), userPullSecret(corev1.SecretTypeDockerConfigJson))
	s.podWaiting = "ErrImagePull"
	s.podMessage = `failed to pull and unpack image "10.244.0.1:5001/m:x": failed to resolve reference "10.244.0.1:5001/m:x": unexpected status from HEAD request to http://10.244.0.1:5001/v2/m/manifests/x: 401 Unauthorized`
	s.podPullRetry = true
	s.run(ctx)
	cfg := testConfig(ModeAuto)
	cfg.Timeout = time.Minute // the failure must not come from the step timeout
	cfg.Mover.PullSecret = &PullSecretRef{Namespace: "ops", Name: "regcred"}
	start := time.Now()
	_, err := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg).Mover(ctx, probeTask(), "data")
	if err == nil || !strings.Contains(err.Error(), "ErrImagePull") || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("got %v; want ErrImagePull with the registry's 401", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failed after %s; want at once", took)
	}
	if left := leftovers(t, s); len(left) != 1 || left[0] != "secret/regcred" {
		t.Errorf("left behind %v", left)
	}
}

// TestPullSecretOfWrongType: an Opaque Secret is no pull Secret; the error says how to make one
// and the mover is not started.
func TestPullSecretOfWrongType(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), userPullSecret(corev1.SecretTypeOpaque))
	s.run(ctx)
	cfg := testConfig(ModeAuto)
	cfg.Mover.PullSecret = &PullSecretRef{Namespace: "ops", Name: "regcred"}
	_, err := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg).Mover(ctx, probeTask(), "data")
	if err == nil || !strings.Contains(err.Error(), "kubectl create secret docker-registry") {
		t.Fatalf("got %v; want the wrong type named", err)
	}
	if len(s.jobs) != 0 {
		t.Error("a mover started without its pull Secret")
	}
	if left := leftovers(t, s); len(left) != 1 || left[0] != "secret/regcred" {
		t.Errorf("left behind %v", left)
	}
}
