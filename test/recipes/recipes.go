// Package recipes reads the schedule recipes of docs/schedules/ (a GitHub Actions workflow, a
// GitLab CI pipeline, systemd units) for the tests that check them: their syntax, that every
// kubectl-pvbackup command in them parses with the plugin's real flags, that docs/schedules.md
// shows them as they are, and (test/e2e) that the workflow's shell steps work against the lab.
package recipes

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Dir is docs/schedules/ of this checkout.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "schedules")
}

// Workflow is the part of a GitHub Actions workflow the tests use.
type Workflow struct {
	Env  map[string]string `json:"env"`
	Jobs map[string]Job    `json:"jobs"`
}

// Job is one job of a workflow.
type Job struct {
	Env   map[string]string `json:"env"`
	Steps []Step            `json:"steps"`
}

// Step is one step: a shell script (Run) or an action (Uses).
type Step struct {
	ID   string            `json:"id"`
	Name string            `json:"name"`
	If   string            `json:"if"`
	Uses string            `json:"uses"`
	Run  string            `json:"run"`
	Env  map[string]string `json:"env"`
}

// LoadWorkflow reads a workflow file.
func LoadWorkflow(path string) (*Workflow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w Workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &w, nil
}

// GitLab is the part of a .gitlab-ci.yml the tests use: each job's script.
type GitLab map[string]struct {
	Script []string `json:"script"`
}

// LoadGitLab reads a GitLab CI file; keys that are not jobs (variables, default, hidden
// templates) have no script.
func LoadGitLab(path string) (GitLab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g := GitLab{}
	if err := yaml.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Unit is a systemd unit file: section → key → values (a key may repeat).
type Unit map[string]map[string][]string

// LoadUnit reads a systemd unit file (comments, sections, key=value; no line continuations).
func LoadUnit(path string) (Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := Unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// Command is one kubectl-pvbackup command of a recipe: its arguments after the binary.
type Command struct {
	Where string // the recipe and step, for messages
	Args  []string
}

// Verb is the command's subcommand (create, prune, ...).
func (c Command) Verb() string {
	if len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

// Flags are the command's flags, "--name value" and "--name=value" alike, by name.
func (c Command) Flags() map[string]string {
	out := map[string]string{}
	for i := 1; i < len(c.Args); i++ {
		a := c.Args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		if k, v, ok := strings.Cut(a[2:], "="); ok {
			out[k] = v
			continue
		}
		if i+1 < len(c.Args) && !strings.HasPrefix(c.Args[i+1], "-") {
			out[a[2:]] = c.Args[i+1]
			i++
		} else {
			out[a[2:]] = "true"
		}
	}
	return out
}

// Commands finds the kubectl-pvbackup commands of a shell script ("kubectl pvbackup ..." or
// "kubectl-pvbackup ..." or its full path), joining continued lines.
func Commands(where, script string) ([]Command, error) {
	var out []Command
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		words, err := Split(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for i, w := range words {
			switch {
			case w == "kubectl" && i+1 < len(words) && words[i+1] == "pvbackup":
				out = append(out, Command{Where: where, Args: words[i+2:]})
			case filepath.Base(w) == "kubectl-pvbackup":
				out = append(out, Command{Where: where, Args: words[i+1:]})
			default:
				continue
			}
			break
		}
	}
	return out, nil
}

// Split splits a shell line into words as the shell would before expansion: quotes removed,
// variables left as written ("$NS" stays $NS), a comment ends the line.
func Split(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '#' && !inWord:
			return words, nil
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// SortedKeys returns a map's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
