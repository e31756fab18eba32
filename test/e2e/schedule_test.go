//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// kubectlStdin runs the lab's kubectl with stdin and returns its output, failing the test on an error.
func kubectlStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(env(t, "PVBACKUP_KUBECTL"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// scheduleSecret creates the Secret a schedule reads: the password and the lab's S3 credentials.
func (c *Cluster) scheduleSecret(t *testing.T, ns, name, password string) {
	t.Helper()
	data := map[string][]byte{"PVBACKUP_PASSWORD": []byte(password)}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
		data[k] = []byte(os.Getenv(k))
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// decodeObjects reads the documents schedule print printed.
func decodeObjects(t *testing.T, manifest string) []runtime.Object {
	t.Helper()
	r := yaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			if strings.Contains(err.Error(), "Object 'Kind' is missing") {
				continue // the header: comments only
			}
			t.Fatalf("decode %s: %v", doc, err)
		}
		out = append(out, obj)
	}
}

// dropClusterObjects deletes a schedule's ClusterRole and ClusterRoleBinding when the test ends
// (the namespaces take the rest with them).
func (c *Cluster) dropClusterObjects(t *testing.T, objs []runtime.Object) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, o := range objs {
			switch x := o.(type) {
			case *rbacv1.ClusterRole:
				_ = c.Kube.RbacV1().ClusterRoles().Delete(ctx, x.Name, metav1.DeleteOptions{})
			case *rbacv1.ClusterRoleBinding:
				_ = c.Kube.RbacV1().ClusterRoleBindings().Delete(ctx, x.Name, metav1.DeleteOptions{})
			}
		}
	})
}

// runCronJob makes a Job from the CronJob as a user would (kubectl create job --from) and waits
// until it finishes; it returns whether it completed and the logs of its containers.
func (c *Cluster) runCronJob(t *testing.T, ns, cronJob, job string, timeout time.Duration) (bool, string) {
	t.Helper()
	kubectlStdin(t, "", "-n", ns, "create", "job", "--from=cronjob/"+cronJob, job)
	done, logs, err := c.finishJob(ns, job, timeout)
	if err != nil {
		t.Fatalf("job %s/%s: %v\n%s\n%s", ns, job, err, logs, c.Diagnose(ns))
	}
	return done, logs
}

// finishJob waits until the Job completes or fails and returns which, with its pods' logs.
func (c *Cluster) finishJob(ns, job string, timeout time.Duration) (bool, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(c.Kube.BatchV1().Jobs(ns), c.Kube, kube.Named(job))
	done := false
	_, err := watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(ev watch.Event) (bool, error) {
		j, ok := ev.Object.(*batchv1.Job)
		if !ok {
			return false, nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status == corev1.ConditionTrue && (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) {
				done = cond.Type == batchv1.JobComplete
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		err = fmt.Errorf("did not finish within %s: %w", timeout, err)
	}
	return done, c.jobLogs(ns, job), err
}

// jobLogs is the log of every container of the Job's pods, init containers first.
func (c *Cluster) jobLogs(ns, job string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		for _, ct := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			raw, err := c.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: ct.Name}).DoRaw(ctx)
			fmt.Fprintf(&b, "--- %s/%s (%v):\n%s\n", p.Name, ct.Name, err, raw)
		}
	}
	return b.String()
}

// listBackups is the location's catalog (list -o json).
func listBackups(t *testing.T, loc string) []catalog.Entry {
	t.Helper()
	r := runPlugin(t, time.Minute, "list", "--from", loc, "-o", "json")
	var entries []catalog.Entry
	if err := json.Unmarshal([]byte(r.stdout), &entries); r.code != 0 || err != nil {
		t.Fatalf("list: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	return entries
}

// TestScheduleCronJob applies schedule print's output to the lab and runs its CronJob as a Job:
// the backup it makes (named by --generate-name) restores with equal checksums, its prune removes
// the backup its keep rule drops (only the schedule's own), doctor finds the CronJob and judges
// its ServiceAccount's rights, and after the password is rotated as docs/schedules.md says, the
// next run works with the new one.
func TestScheduleCronJob(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ops := c.Namespace(t, "e2e-sched-ops")
	app := c.Namespace(t, "e2e-sched-app")
	c.PVC(t, app, "data", "200Mi", nil)
	c.RunJob(t, app, "fill", "data", 3*time.Minute, "sh", "-c", strings.ReplaceAll(writeScript, "$NAME", "sched"))
	want := c.sums(t, app, []string{"data"}, "before")
	// A custom resource in the namespace: its CRD is fetched with it, which takes get on CRDs.
	c.Snapshot(t, app, "user-snapshot", "data", c.SnapshotClass)
	loc := c.location(t)
	label := ops + ".nightly"

	// Backups the keep rule will drop: one of the schedule's, and one of nobody's, which stays.
	for _, b := range []struct{ name, labels string }{{"planted", "pvbackup.io/schedule=" + label}, {"unrelated", "owner=someone"}} {
		if r := runPlugin(t, 3*time.Minute, "create", b.name, "--to", loc, "--include-namespaces", app, "--volumes", "none", "--labels", b.labels); r.code != 0 {
			t.Fatalf("create %s: exit %d\n%s", b.name, r.code, r.stdout)
		}
	}
	r := runPlugin(t, time.Minute, "schedule", "print", "nightly", "-n", ops, "--include-namespaces", app, "--cron", "0 2 * * *", "--to", loc,
		"--volumes", "snapshot-move", "--mover-image", moverImage(), "--mover-pull-policy", "Never", "--mover-privileged", "--keep-last", "1")
	if r.code != 0 {
		t.Fatalf("schedule print: exit %d\n%s", r.code, r.stderr)
	}
	c.dropClusterObjects(t, decodeObjects(t, r.stdout))
	c.scheduleSecret(t, ops, "pvbackup-nightly", "e2e-password")
	t.Log(kubectlStdin(t, r.stdout, "apply", "-f", "-"))

	start := time.Now()
	ok, logs := c.runCronJob(t, ops, "nightly", "nightly-now", 10*time.Minute)
	t.Logf("the CronJob's run took %s:\n%s", time.Since(start).Round(time.Second), logs)
	if !ok {
		t.Fatalf("the CronJob's run failed\n%s", c.Diagnose(ops))
	}
	first := c.wantScheduled(t, loc, label, "")
	c.noLeftovers(t, first)

	// The backup restores, with equal checksums, into another namespace.
	copyNS := app + "-copy"
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
	if r := runPlugin(t, 10*time.Minute, append([]string{"restore", first, "--from", loc, "--namespace-mapping", app + ":" + copyNS}, moverArgs()...)...); r.code != 0 {
		t.Fatalf("restore %s: exit %d\n%s", first, r.code, r.stdout)
	}
	compareSums(t, want, c.sums(t, copyNS, []string{"data"}, "after"), "restore of "+first)

	// doctor finds the schedule and its ServiceAccount has every right it needs.
	_, rep := doctorRun(t, 3*time.Minute, "-n", ops)
	for _, name := range []string{"schedule " + ops + "/nightly (cluster)", "schedule " + ops + "/nightly in " + app, "schedule " + ops + "/nightly: secret"} {
		if res := check(t, rep, name); res.Status != "ok" {
			t.Errorf("%s: %s %s", name, res.Status, res.Detail)
		}
	}

	c.rotateScheduledPassword(t, ops, loc)
	ok, logs = c.runCronJob(t, ops, "nightly", "nightly-rotated", 10*time.Minute)
	if !ok {
		t.Fatalf("the run after the password change failed:\n%s", logs)
	}
	second := c.wantScheduled(t, loc, label, first)
	if status := runPlugin(t, time.Minute, "status", "--from", loc, "--prefix", "nightly", "--max-age", "26h"); status.code != 0 || !strings.Contains(status.stdout, second) {
		t.Errorf("status after the runs: exit %d\n%s%s", status.code, status.stdout, status.stderr)
	}
}

// wantScheduled checks that the location holds one backup of the schedule, generated by it
// (not dropped, not prev, which its prune removed), Completed, plus the unrelated one.
func (c *Cluster) wantScheduled(t *testing.T, loc, label, prev string) string {
	t.Helper()
	var mine []string
	unrelated := false
	for _, e := range listBackups(t, loc) {
		switch {
		case e.Name == "unrelated":
			unrelated = true
		case e.Manifest != nil && e.Manifest.Labels["pvbackup.io/schedule"] == label:
			mine = append(mine, e.Name)
			if prefix, _, ok := catalog.ParseGenerated(e.Name); !ok || prefix != "nightly" || e.Status != catalog.Completed || e.Name == prev {
				t.Errorf("backup %s: %s (want a Completed nightly-YYYYMMDD-HHMMSS, not %q)", e.Name, e.Status, prev)
			}
			for _, w := range e.Manifest.Warnings {
				if strings.Contains(w.Message, "forbidden") {
					t.Errorf("backup %s: a right the schedule lacks: %s", e.Name, w.Message)
				}
			}
			if !slices.ContainsFunc(e.Manifest.Resources, func(c catalog.Count) bool {
				return strings.HasPrefix(c.Resource, "apiextensions.k8s.io/") && c.Count == 1
			}) {
				t.Errorf("backup %s has no CRD of its VolumeSnapshot: %+v", e.Name, e.Manifest.Resources)
			}
		default:
			t.Errorf("backup %s (%s) is still there: prune should have removed it", e.Name, e.Status)
		}
	}
	if len(mine) != 1 || !unrelated {
		t.Fatalf("the schedule's backups %v (want one), the unrelated one kept: %v", mine, unrelated)
	}
	return mine[0]
}

// rotateScheduledPassword changes the location's password as docs/schedules.md says, with the
// schedule in place: suspend it, change the password, update the Secret, resume it.
func (c *Cluster) rotateScheduledPassword(t *testing.T, ns, loc string) {
	t.Helper()
	kubectlStdin(t, "", "-n", ns, "patch", "cronjob", "nightly", "-p", `{"spec":{"suspend":true}}`)
	newPW := filepath.Join(t.TempDir(), "new-password")
	if err := os.WriteFile(newPW, []byte("e2e-password-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runPlugin(t, 2*time.Minute, "repo", "change-password", "--from", loc, "--new-password-file", newPW); r.code != 0 {
		t.Fatalf("change-password: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	envFile := filepath.Join(t.TempDir(), "pvbackup.env")
	var b bytes.Buffer
	fmt.Fprintf(&b, "PVBACKUP_PASSWORD=e2e-password-2\n")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
		fmt.Fprintf(&b, "%s=%s\n", k, os.Getenv(k))
	}
	if err := os.WriteFile(envFile, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := kubectlStdin(t, "", "-n", ns, "create", "secret", "generic", "pvbackup-nightly", "--from-env-file="+envFile, "--dry-run=client", "-o", "yaml")
	kubectlStdin(t, secret, "apply", "-f", "-")
	kubectlStdin(t, "", "-n", ns, "patch", "cronjob", "nightly", "-p", `{"spec":{"suspend":false}}`)
}

// TestScheduleLeastRights: each rule of the schedule's ClusterRole and Role is needed. For every
// rule, a copy of the schedule (its own ServiceAccount, ClusterRole and Role) without that rule
// runs once; the run must fail and its log must name a right the rule grants. The runs go four
// at a time; each stops at the first call it may not make or at create's preflight, which asks
// the API server (SelfSubjectAccessReview) for every right of the plan before anything is written.
func TestScheduleLeastRights(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ops := c.Namespace(t, "e2e-rights-ops")
	app := c.Namespace(t, "e2e-rights-app")
	c.PVC(t, app, "data", "64Mi", nil)
	c.RunJob(t, app, "fill", "data", 2*time.Minute, "sh", "-c", "echo rights > /data/f")
	print := func(name string) []runtime.Object {
		r := runPlugin(t, time.Minute, "schedule", "print", name, "-n", ops, "--include-namespaces", app, "--cron", "@daily", "--to", c.location(t),
			"--volumes", "snapshot-move", "--mover-image", moverImage(), "--mover-pull-policy", "Never", "--secret", "pvbackup")
		if r.code != 0 {
			t.Fatalf("schedule print: exit %d\n%s", r.code, r.stderr)
		}
		objs := decodeObjects(t, r.stdout)
		c.dropClusterObjects(t, objs)
		return objs
	}
	c.scheduleSecret(t, ops, "pvbackup", "e2e-password")
	type variant struct {
		name string
		rule rbacv1.PolicyRule
		objs []runtime.Object
	}
	var variants []variant
	cluster, namespaced := rulesOf(print("probe"))
	for i := range len(cluster) + len(namespaced) {
		v := variant{name: fmt.Sprintf("drop-%d", i)}
		v.objs = print(v.name)
		v.rule = dropRule(v.objs, i, len(cluster))
		variants = append(variants, v)
	}
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, v := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c.applyObjects(t, v.objs)
			ok, logs := c.runCronJobQuiet(ops, v.name)
			switch {
			case ok && namesRule(logs, v.rule):
				// The cluster objects the backed-up ones refer to: create leaves them out and warns.
				t.Logf("without %s: the run succeeded, warning that it leaves out what the rule reads", ruleString(v.rule))
			case ok:
				t.Errorf("without the rule %s the run succeeded: the rule is not needed\n%s", ruleString(v.rule), logs)
			case !namesRule(logs, v.rule):
				t.Errorf("without the rule %s the run failed without naming it:\n%s", ruleString(v.rule), logs)
			default:
				t.Logf("without %s: the run failed naming it", ruleString(v.rule))
			}
		}()
	}
	wg.Wait()
	t.Logf("%d rules taken away, one run each, 4 at a time, in %s", len(variants), time.Since(start).Round(time.Second))
}

// rulesOf returns the rules of the schedule's ClusterRole and Role.
func rulesOf(objs []runtime.Object) (cluster, namespaced []rbacv1.PolicyRule) {
	for _, o := range objs {
		switch x := o.(type) {
		case *rbacv1.ClusterRole:
			cluster = x.Rules
		case *rbacv1.Role:
			namespaced = x.Rules
		}
	}
	return cluster, namespaced
}

// dropRule takes rule i away: of the ClusterRole when i < nCluster, else of the Role.
func dropRule(objs []runtime.Object, i, nCluster int) rbacv1.PolicyRule {
	for _, o := range objs {
		switch x := o.(type) {
		case *rbacv1.ClusterRole:
			if i < nCluster {
				r := x.Rules[i]
				x.Rules = append(x.Rules[:i:i], x.Rules[i+1:]...)
				return r
			}
		case *rbacv1.Role:
			if i >= nCluster {
				j := i - nCluster
				r := x.Rules[j]
				x.Rules = append(x.Rules[:j:j], x.Rules[j+1:]...)
				return r
			}
		}
	}
	panic("no such rule")
}

func ruleString(r rbacv1.PolicyRule) string {
	return fmt.Sprintf("%s %s (group %q)", strings.Join(r.Verbs, ","), strings.Join(r.Resources, ","), strings.Join(r.APIGroups, ","))
}

// namesRule reports whether a run's log names a right the rule grants: as doctor's preflight
// names it ("list pods", "get pods/log", "create volumesnapshots.snapshot.storage.k8s.io"), or as
// the API server refuses it (cannot list resource "pods").
func namesRule(logs string, r rbacv1.PolicyRule) bool {
	for _, verb := range r.Verbs {
		for _, res := range r.Resources {
			if res == "*" {
				if (strings.Contains(logs, "missing as system:serviceaccount:") && strings.Contains(logs, ": "+verb+" ")) || strings.Contains(logs, "cannot "+verb+" resource") {
					return true
				}
				continue
			}
			name := res // as doctor.Right prints it: resource[/subresource][.group]
			if g := r.APIGroups[0]; g != "" {
				name += "." + g
			}
			if strings.Contains(logs, verb+" "+name+" (") || strings.Contains(logs, fmt.Sprintf("cannot %s resource %q", verb, res)) {
				return true
			}
		}
	}
	return false
}

// applyObjects creates a schedule's objects through the API (as kubectl apply would).
func (c *Cluster) applyObjects(t *testing.T, objs []runtime.Object) {
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch x := o.(type) {
		case *corev1.ServiceAccount:
			_, err = c.Kube.CoreV1().ServiceAccounts(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.Kube.RbacV1().ClusterRoles().Create(ctx, x, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.Kube.RbacV1().ClusterRoleBindings().Create(ctx, x, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.Kube.RbacV1().Roles(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = c.Kube.RbacV1().RoleBindings(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
		case *batchv1.CronJob:
			_, err = c.Kube.BatchV1().CronJobs(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
		}
		if err != nil {
			t.Errorf("create %T: %v", o, err)
		}
	}
}

// runCronJobQuiet is runCronJob for goroutines: no t.Fatal, a run that does not finish is a
// failed run.
func (c *Cluster) runCronJobQuiet(ns, name string) (bool, string) {
	cmd := exec.Command(os.Getenv("PVBACKUP_KUBECTL"), "-n", ns, "create", "job", "--from=cronjob/"+name, name+"-run")
	if out, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Sprintf("kubectl create job: %v\n%s", err, out)
	}
	done, logs, err := c.finishJob(ns, name+"-run", 5*time.Minute)
	if err != nil {
		return false, err.Error() + "\n" + logs
	}
	return done, logs
}
