//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSchedulePullSecret: a schedule whose mover image is in the lab's registry behind basic
// auth (schedule print --mover-pull-secret). The CronJob's pod pulls the image with the Secret,
// its create copies it to the movers (which pull too) and removes the copy; doctor finds the
// ServiceAccount may get it. Without the Role that grants get on that Secret the run fails,
// naming it.
func TestSchedulePullSecret(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	reg := newLabRegistry(t)
	ops := c.Namespace(t, "e2e-sched-pull-ops")
	app := c.Namespace(t, "e2e-sched-pull-app")
	c.PVC(t, app, "data", "64Mi", nil)
	c.RunJob(t, app, "fill", "data", 2*time.Minute, "sh", "-c", "echo pulled > /data/f && sync")
	ref := reg.auth + "/" + ops + "/pvbackup-mover:e2e"
	reg.push(t, ref)
	_, err := c.Kube.CoreV1().Secrets(ops).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(reg.auth, reg.user, reg.password)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loc := c.location(t)
	// Always: the CronJob's pod and the mover may land on one node, and with IfNotPresent the
	// mover would find the image there and never show that its own copy of the pull Secret works.
	r := runPlugin(t, time.Minute, "schedule", "print", "nightly", "-n", ops, "--include-namespaces", app, "--cron", "@daily", "--to", loc,
		"--volumes", "fs", "--mover-image", ref, "--mover-pull-policy", "Always", "--mover-privileged", "--mover-pull-secret", "regcred")
	if r.code != 0 {
		t.Fatalf("schedule print: exit %d\n%s", r.code, r.stderr)
	}
	c.dropClusterObjects(t, decodeObjects(t, r.stdout))
	c.scheduleSecret(t, ops, "pvbackup-nightly", "e2e-password")
	kubectlStdin(t, r.stdout, "apply", "-f", "-")

	ok, logs := c.runCronJob(t, ops, "nightly", "nightly-now", 8*time.Minute)
	if !ok {
		t.Fatalf("the CronJob's run failed:\n%s\n%s", logs, c.Diagnose(ops))
	}
	for _, ns := range []string{ops, app} {
		if !c.moverPulled(t, ns, ref) {
			t.Errorf("nothing in %s pulled %s: %s", ns, ref, c.Diagnose(ns))
		}
	}
	c.noSecretCopies(t, app)
	_, rep := doctorRun(t, 3*time.Minute, "-n", ops)
	if res := check(t, rep, "schedule "+ops+"/nightly: pull secret regcred"); res.Status != "ok" {
		t.Errorf("doctor on the pull Secret: %s %s", res.Status, res.Detail)
	}

	// Without the Role on the pull Secret, create cannot copy it and says which right it lacks.
	role := "pvbackup-schedule:" + ops + ":nightly:pull-secret"
	if err := c.Kube.RbacV1().Roles(ops).Delete(context.Background(), role, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ok, logs = c.runCronJob(t, ops, "nightly", "nightly-no-right", 8*time.Minute)
	if ok || !strings.Contains(logs, "regcred") || !strings.Contains(logs, `cannot get resource "secrets"`) {
		t.Errorf("without Role %s the run: completed %v, logs:\n%s", role, ok, logs)
	}
	c.noSecretCopies(t, app)
}
