package recipes

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
)

// TestGitHubWorkflowLint checks the workflow with actionlint: the workflow syntax and its
// schema (keys, types, the events and their filters, cron), the ${{ }} expressions against the
// contexts they may use (secrets, vars, inputs, github.event.schedule), and the run scripts with
// shellcheck when it is installed.
func TestGitHubWorkflowLint(t *testing.T) {
	path := filepath.Join(Dir(), "github-actions.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := &actionlint.LinterOptions{LogWriter: io.Discard}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
		t.Logf("run scripts checked with %s", sc)
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(path, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", filepath.Base(path), e.Line, e.Column, e.Message, e.Kind)
	}
	// A broken copy is caught: the check checks.
	broken := strings.Replace(string(b), "runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    step:\n      - run: x", 1)
	if errs, _ := l.Lint(path, []byte(broken), nil); len(errs) == 0 {
		t.Error("actionlint accepts a job with an unknown key")
	}
}

// placeholders stand for the variables the recipes' commands use.
var placeholders = strings.NewReplacer(
	"${PVBACKUP_NAMESPACES}", "shop,web", "$PVBACKUP_NAMESPACES", "shop,web",
	"${CREDENTIALS_DIRECTORY}", "/run/credentials/pvbackup-create.service",
)

// allCommands are the kubectl-pvbackup commands of every recipe, by recipe.
func allCommands(t *testing.T) map[string][]Command {
	t.Helper()
	out := map[string][]Command{}
	w, err := LoadWorkflow(filepath.Join(Dir(), "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range SortedKeys(w.Jobs) {
		for _, s := range w.Jobs[name].Steps {
			cs, err := Commands("github-actions.yml step "+s.ID, s.Run)
			if err != nil {
				t.Fatal(err)
			}
			out["github"] = append(out["github"], cs...)
		}
	}
	g, err := LoadGitLab(filepath.Join(Dir(), "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range SortedKeys(g) {
		for _, line := range g[name].Script {
			cs, err := Commands("gitlab-ci.yml job "+name, line)
			if err != nil {
				t.Fatal(err)
			}
			out["gitlab"] = append(out["gitlab"], cs...)
		}
	}
	units, _ := filepath.Glob(filepath.Join(Dir(), "*.service"))
	for _, p := range units {
		u, err := LoadUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range u["Service"]["ExecStart"] {
			cs, err := Commands(filepath.Base(p), line)
			if err != nil {
				t.Fatal(err)
			}
			out["systemd"] = append(out["systemd"], cs...)
		}
	}
	return out
}

// TestRecipeCommands: every kubectl-pvbackup command of every recipe is a command of the plugin
// whose flags it knows, with values of the right types; and the GitLab and systemd recipes run
// what the GitHub workflow runs (its flags, with its values), which test/e2e runs on the lab.
func TestRecipeCommands(t *testing.T) {
	cmds := allCommands(t)
	if len(cmds["github"]) != 4 || len(cmds["gitlab"]) != 4 || len(cmds["systemd"]) != 2 {
		t.Fatalf("commands found: %v", cmds)
	}
	root := cli.NewRootCmd(context.Background(), genericiooptions.NewTestIOStreamsDiscard())
	github := map[string]Command{}
	for _, c := range cmds["github"] {
		github[c.Verb()] = c
	}
	for _, recipe := range SortedKeys(cmds) {
		for _, c := range cmds[recipe] {
			args := strings.Fields(placeholders.Replace(strings.Join(c.Args, " ")))
			sub, rest, err := root.Find(args)
			if err != nil || sub == root {
				t.Errorf("%s: %v is no command of the plugin: %v", c.Where, c.Args, err)
				continue
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%s: %v: %v", c.Where, c.Args, err)
			}
			if strings.Contains(strings.Join(args, " "), "$") {
				t.Errorf("%s: a variable without a placeholder: %v", c.Where, c.Args)
			}
			want, ok := github[c.Verb()]
			if !ok {
				t.Errorf("%s: %s is not in the GitHub workflow, which the lab runs", c.Where, c.Verb())
				continue
			}
			got := c.Flags()
			for k, v := range want.Flags() {
				if normalize(got[k]) != normalize(v) {
					t.Errorf("%s: --%s %q, the GitHub workflow has %q", c.Where, k, got[k], v)
				}
			}
		}
	}
}

var braced = regexp.MustCompile(`\$\{(\w+)\}`)

func normalize(v string) string { return braced.ReplaceAllString(v, "$$$1") }

// TestSystemdUnits: each timer starts a service of the same name, persistent (a run missed
// while the machine was off is made up at boot), and each service is a oneshot with its
// environment file.
func TestSystemdUnits(t *testing.T) {
	timers, _ := filepath.Glob(filepath.Join(Dir(), "*.timer"))
	if len(timers) != 2 {
		t.Fatalf("timers: %v", timers)
	}
	for _, p := range timers {
		u, err := LoadUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(u["Timer"]["OnCalendar"]) != 1 || u["Timer"]["Persistent"][0] != "true" || u["Install"]["WantedBy"][0] != "timers.target" {
			t.Errorf("%s: %v", filepath.Base(p), u)
		}
		svc, err := LoadUnit(strings.TrimSuffix(p, ".timer") + ".service")
		if err != nil {
			t.Fatalf("%s has no service: %v", filepath.Base(p), err)
		}
		s := svc["Service"]
		if s["Type"][0] != "oneshot" || len(s["ExecStart"]) != 1 || len(s["EnvironmentFile"]) != 1 || len(s["LoadCredential"]) != 1 || svc["Unit"]["OnFailure"] == nil {
			t.Errorf("%s.service: %v", strings.TrimSuffix(filepath.Base(p), ".timer"), svc)
		}
	}
}

// TestDocsShowRecipes: docs/schedules.md shows each recipe file whole and as it is, so that the
// tested file is what a reader copies.
func TestDocsShowRecipes(t *testing.T) {
	doc := filepath.Join(Dir(), "..", "schedules.md")
	f, err := os.Open(doc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	shown := map[string]string{}
	marker := regexp.MustCompile(`^<!-- file: schedules/([\w.-]+) -->$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := marker.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("%s: no code block after the marker of %s", doc, m[1])
		}
		var body strings.Builder
		for sc.Scan() && sc.Text() != "```" {
			body.WriteString(sc.Text() + "\n")
		}
		shown[m[1]] = body.String()
	}
	files, _ := os.ReadDir(Dir())
	for _, e := range files {
		b, err := os.ReadFile(filepath.Join(Dir(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := shown[e.Name()]
		switch {
		case !ok:
			t.Errorf("docs/schedules.md does not show %s (a marker <!-- file: schedules/%s --> before a code block)", e.Name(), e.Name())
		case got != string(b):
			t.Errorf("docs/schedules.md shows %s differently from the file (copy the file into the doc)", e.Name())
		}
	}
}
