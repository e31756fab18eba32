//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/recipes"
)

// runner plays the part of a GitHub Actions runner for the steps of one job: the workflow's,
// the job's and the step's env with ${{ secrets.X }} and ${{ vars.X }} filled in, RUNNER_TEMP,
// and GITHUB_ENV and GITHUB_PATH read back after each step, as the runner does.
type runner struct {
	t            *testing.T
	secrets      map[string]string
	vars         map[string]string
	env          map[string]string // set by earlier steps through GITHUB_ENV
	path         []string          // added by earlier steps through GITHUB_PATH
	dir, binPath string
}

var expression = regexp.MustCompile(`\$\{\{\s*(secrets|vars)\.(\w+)\s*\}\}`)

func (r *runner) expand(v string) string {
	out := expression.ReplaceAllStringFunc(v, func(m string) string {
		g := expression.FindStringSubmatch(m)
		if g[1] == "secrets" {
			return r.secrets[g[2]]
		}
		return r.vars[g[2]]
	})
	if strings.Contains(out, "${{") {
		r.t.Fatalf("an expression this runner does not know: %q", v)
	}
	return out
}

// step runs one step's script with bash as the runner does (bash --noprofile --norc -eo pipefail).
func (r *runner) step(w *recipes.Workflow, job recipes.Job, s recipes.Step) (string, error) {
	env := map[string]string{"HOME": r.dir, "RUNNER_TEMP": filepath.Join(r.dir, "temp"),
		"GITHUB_ENV": filepath.Join(r.dir, "github-env"), "GITHUB_PATH": filepath.Join(r.dir, "github-path")}
	for _, m := range []map[string]string{w.Env, job.Env, s.Env} {
		for k, v := range m {
			env[k] = r.expand(v)
		}
	}
	for k, v := range r.env {
		env[k] = v
	}
	env["PATH"] = strings.Join(append(append([]string{}, r.path...), r.binPath, "/usr/local/bin", "/usr/bin", "/bin"), ":")
	_ = os.MkdirAll(env["RUNNER_TEMP"], 0o700)
	script := filepath.Join(r.dir, "step.sh")
	if err := os.WriteFile(script, []byte(s.Run), 0o600); err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Dir = r.dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	r.readBack(env["GITHUB_ENV"], env["GITHUB_PATH"])
	return string(out), err
}

func (r *runner) readBack(envFile, pathFile string) {
	if f, err := os.Open(envFile); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				r.env[k] = v
			}
		}
		f.Close()
		_ = os.Remove(envFile)
	}
	if b, err := os.ReadFile(pathFile); err == nil {
		for _, p := range strings.Fields(string(b)) {
			r.path = append([]string{p}, r.path...)
		}
		_ = os.Remove(pathFile)
	}
}

// runs says whether a step runs for a task: no condition, always(), or its task's.
func runs(s recipes.Step, task string) bool {
	return s.If == "" || strings.Contains(s.If, "always()") || strings.Contains(s.If, "inputs.task == '"+task+"'")
}

// TestGitHubWorkflowSteps runs the shell steps of docs/schedules/github-actions.yml against the
// lab, task by task (create, prune, verify), each as a fresh job with the environment the workflow
// gives it: the kubeconfig written from the KUBECONFIG secret, the password and the bucket's
// credentials from secrets, the location and namespaces from variables. Only the krew install
// step is not run (no network here): the plugin built from this checkout is on PATH instead.
func TestGitHubWorkflowSteps(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	app := c.Namespace(t, "e2e-gha")
	c.PVC(t, app, "data", "64Mi", nil)
	c.RunJob(t, app, "fill", "data", 2*time.Minute, "sh", "-c", "mkdir -p /data/d && echo nightly > /data/d/f && head -c 3000000 /dev/urandom > /data/big && sync")
	loc := c.location(t)
	// A backup of the schedule whose TTL has passed by the time prune runs: prune removes it
	// whatever the keep rules say (two backups of one day both stay: the oldest is kept while
	// the daily count lasts, as restic does).
	if r := runPlugin(t, 3*time.Minute, "create", "planted", "--to", loc, "--include-namespaces", app, "--volumes", "none", "--labels", "schedule=nightly", "--ttl", "1s"); r.code != 0 {
		t.Fatalf("create planted: exit %d\n%s", r.code, r.stdout)
	}
	kubeconfig, err := os.ReadFile(env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for name, target := range map[string]string{"kubectl": env(t, "PVBACKUP_KUBECTL"), "kubectl-pvbackup": plugin(t)} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := recipes.LoadWorkflow(filepath.Join(recipes.Dir(), "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	job := w.Jobs["pvbackup"]
	secrets := map[string]string{"KUBECONFIG": string(kubeconfig), "PVBACKUP_PASSWORD": "e2e-password",
		"AWS_ACCESS_KEY_ID": os.Getenv("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": os.Getenv("AWS_SECRET_ACCESS_KEY")}
	vars := map[string]string{"PVBACKUP_LOCATION": loc, "PVBACKUP_NAMESPACES": app, "PVBACKUP_MOVER_IMAGE": moverImage(), "AWS_REGION": os.Getenv("AWS_REGION")}
	for _, task := range []string{"create", "prune", "verify"} {
		r := &runner{t: t, secrets: secrets, vars: vars, env: map[string]string{}, dir: t.TempDir(), binPath: bin}
		var ran []string
		for _, s := range job.Steps {
			if s.ID == "install" {
				if !strings.Contains(s.Run, "kubectl krew install pvbackup") {
					t.Errorf("the install step does not install the plugin:\n%s", s.Run)
				}
				continue
			}
			if !runs(s, task) {
				continue
			}
			start := time.Now()
			out, err := r.step(w, job, s)
			t.Logf("task %s, step %s (%s): %v in %s\n%s", task, s.ID, s.Name, err, time.Since(start).Round(time.Millisecond), out)
			if err != nil {
				t.Fatalf("task %s: step %s failed: %v\n%s", task, s.ID, err, out)
			}
			ran = append(ran, s.ID)
		}
		if want := "kubeconfig," + task + ",status"; strings.Join(ran, ",") != want {
			t.Errorf("task %s ran steps %v, want %s", task, ran, want)
		}
		c.wantWorkflowBackups(t, loc, task)
	}
	generatedName(t, loc, app)
}

// generatedName: create --generate-name prints the name it chose, in text and as the manifest's
// name in -o json, and that is the backup in the location.
func generatedName(t *testing.T, loc, ns string) {
	t.Helper()
	text := runPlugin(t, 3*time.Minute, "create", "--generate-name", "adhoc", "--to", loc, "--include-namespaces", ns, "--volumes", "none")
	js := runPlugin(t, 3*time.Minute, "create", "--generate-name", "adhoc", "--to", loc, "--include-namespaces", ns, "--volumes", "none", "-o", "json")
	var m catalog.Manifest
	if text.code != 0 || js.code != 0 || json.Unmarshal([]byte(js.stdout), &m) != nil {
		t.Fatalf("create --generate-name: exit %d and %d\n%s%s\n%s", text.code, js.code, text.stdout, text.stderr, js.stdout)
	}
	names := map[string]bool{}
	for _, e := range listBackups(t, loc) {
		if prefix, _, ok := catalog.ParseGenerated(e.Name); ok && prefix == "adhoc" && e.Status == catalog.Completed {
			names[e.Name] = true
		}
	}
	if len(names) != 2 || !names[m.Name] {
		t.Fatalf("backups adhoc-*: %v, -o json named %q", names, m.Name)
	}
	delete(names, m.Name)
	for name := range names {
		if !strings.Contains(text.stdout+text.stderr, name) {
			t.Errorf("create --generate-name did not print the name %s:\n%s%s", name, text.stdout, text.stderr)
		}
	}
}

// wantWorkflowBackups checks the location after each task: one nightly backup, Completed, and
// the planted one until prune removed it.
func (c *Cluster) wantWorkflowBackups(t *testing.T, loc, task string) {
	t.Helper()
	nightly, planted := 0, false
	for _, e := range listBackups(t, loc) {
		if prefix, _, ok := catalog.ParseGenerated(e.Name); ok && prefix == "nightly" && e.Status == catalog.Completed && e.Manifest.Labels["schedule"] == "nightly" {
			nightly++
		}
		planted = planted || e.Name == "planted"
	}
	if nightly != 1 || planted != (task == "create") {
		t.Errorf("after %s: %d nightly backups (want 1), planted there: %v", task, nightly, planted)
	}
}
