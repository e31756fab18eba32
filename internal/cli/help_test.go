package cli

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// commands returns every command of the tree, hidden ones too, so that a command added later
// gets its golden file with -update.
func commands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		out = append(out, commands(sub)...)
	}
	return out
}

// goldenName is testdata/cli/help/<path>.golden: "root", "create", "repo-maintain".
func goldenName(c *cobra.Command) string {
	path := strings.Fields(c.CommandPath())[2:] // drop "kubectl pvbackup"
	if len(path) == 0 {
		return "cli/help/root.golden"
	}
	return "cli/help/" + strings.Join(path, "-") + ".golden"
}

// TestHelpGolden renders each command's --help and compares it with its golden file: help is
// what users read first, and a flag's wording (or pflag's reading of it) must not change unseen.
func TestHelpGolden(t *testing.T) {
	t.Setenv("HOME", "/home/user") // kubectl's --cache-dir default shows it
	tree := NewRootCmd(context.Background(), genericiooptions.NewTestIOStreamsDiscard())
	for _, c := range commands(tree) {
		t.Run(goldenName(c), func(t *testing.T) {
			args := append(strings.Fields(c.CommandPath())[2:], "--help")
			out, errOut, code := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Assert(t, goldenName(c), []byte(out))
		})
	}
}

// valueName is what pflag may take from back-quotes in a usage string: a placeholder such as
// FILE or KEY=VALUE. Anything else back-quoted (a command, `make image`) would be shown as the
// flag's value name, so usage strings must quote commands some other way.
var valueName = regexp.MustCompile(`^[A-Z][A-Z0-9_=.,]*$`)

func TestFlagUsageBackQuotes(t *testing.T) {
	tree := NewRootCmd(context.Background(), genericiooptions.NewTestIOStreamsDiscard())
	for _, c := range commands(tree) {
		check := func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			if strings.Contains(f.Usage, "`") && !valueName.MatchString(name) {
				t.Errorf("%s --%s: usage back-quotes %q, which help shows as the value name: quote commands with \"...\" or write them plainly", c.CommandPath(), f.Name, name)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.InheritedFlags().VisitAll(check)
	}
}
