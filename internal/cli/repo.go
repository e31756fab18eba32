package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// NewRepoCmd builds `repo`, the group of commands that look after a location's repositories.
func NewRepoCmd(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Look after the location: its volume data repositories and its password",
		Long: `Each source namespace's volume data lives in its own Kopia repository, under kopia/<namespace>/
of the location. These commands run from this machine with the bucket's credentials and the
password; nothing runs in the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(NewRepoMaintainCmd(streams), NewRepoStatusCmd(streams), NewRepoListCmd(streams), newRepoChangePasswordCmd(streams),
		newRepoInitCmd(streams), newRepoRecoverCmd(streams), newRepoExportKeyCmd(streams), newRepoImportKeyCmd(streams))
	return cmd
}

var changePasswordExample = examples(`
	# Change the password of a location (asks for the new one twice on a terminal)
	export PVBACKUP_PASSWORD=...   # the current password, or --password-file
	%[1]s repo change-password --from 's3://backups/prod?region=eu-west-1'

	# Non-interactive (CI): the new password from a file
	%[1]s repo change-password --password-file old.txt --new-password-file new.txt`)

// RepoChangePasswordOptions are the flags of `repo change-password`.
type RepoChangePasswordOptions struct {
	streams         genericiooptions.IOStreams
	location        locationOptions
	output          outputOptions
	password        passwordOptions
	NewPasswordFile string

	current, next string
	// afterStep is keyring.ChangeOptions.AfterStep: tests stop (or kill) the change there.
	afterStep func(step string) error
}

func newRepoChangePasswordCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &RepoChangePasswordOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "change-password [--from URL]",
		Short: "Change the location's password: the old one opens nothing afterwards",
		Long: `Change the password of a backup location.

The password unwraps the location's key (keys/location.age), from which every repository and
archive key is derived; the change rewraps that one object and re-encrypts nothing, so it takes
about a second whatever the location holds. It is safe to interrupt: until it finishes both
passwords work, and running the same command again finishes it. Afterwards the old password
opens nothing.

The keys derived from the location key do not change: a repository key that leaked (from a
mover Secret) stays valid. To retire a location key, back up to a new location.`,
		Example: fmt.Sprintf(changePasswordExample, "kubectl pvbackup"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	fs.StringVar(&o.NewPasswordFile, "new-password-file", "", "file holding the new password (default: asked twice on the terminal)")
	return cmd
}

// Complete reads the current password and the new one (file, or twice on a terminal).
func (o *RepoChangePasswordOptions) Complete() error {
	o.location.complete()
	var err error
	if o.current, err = o.password.load(o.streams.ErrOut); err != nil {
		return err
	}
	if o.NewPasswordFile != "" {
		if o.next, err = password.ReadFile(o.NewPasswordFile); err != nil {
			return fmt.Errorf("read the new password: %w", err)
		}
		if warn := password.FileWarning(o.NewPasswordFile); warn != "" {
			fmt.Fprintln(o.streams.ErrOut, warn)
		}
		return nil
	}
	o.next, err = promptNewPassword(o.streams)
	return err
}

// Validate checks the options without any I/O.
func (o *RepoChangePasswordOptions) Validate() error {
	if err := o.output.validate(); err != nil {
		return err
	}
	if strings.TrimSpace(o.next) == "" {
		return errors.New("the new password is empty or only whitespace: choose a real one")
	}
	if o.next == o.current {
		return errors.New("the new password is the current one")
	}
	return o.location.validate()
}

// Run changes the password and says what happened.
func (o *RepoChangePasswordOptions) Run(ctx context.Context) (err error) {
	loc, err := store.Open(ctx, o.location.URL)
	if err != nil {
		return err
	}
	defer loc.Close()
	// Two changes at once would both report success with only one new password in force: the
	// location's lease lets one run, and the other fails naming it. (A change killed and run
	// again on this machine takes its own dead run's lease over.)
	l, err := lease.Acquire(ctx, loc, "repo change-password", 0)
	if err != nil {
		return fmt.Errorf("the password was not changed: %w", err)
	}
	defer func() { err = errors.Join(err, l.Release(ctx)) }()
	res, err := keyring.ChangePassword(ctx, loc, o.current, o.next, keyring.ChangeOptions{AfterStep: o.afterStep})
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	resumed := ""
	if res.Resumed {
		resumed = " (an earlier, interrupted change was finished)"
	}
	fmt.Fprintf(o.streams.Out, "Changed the password of %s in %.1fs%s: the old password opens nothing now. Use the new one (PVBACKUP_PASSWORD or --password-file) from here on; no backup was re-encrypted.\n",
		res.Location, res.Seconds, resumed)
	return nil
}

// promptNewPassword asks twice on the terminal; without one it says which flag to use.
func promptNewPassword(streams genericiooptions.IOStreams) (string, error) {
	in, ok := streams.In.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("no new password: pass --new-password-file FILE (or run on a terminal to be asked)")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(streams.ErrOut, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(streams.ErrOut)
		return string(b), err
	}
	p1, err := ask("New password: ")
	if err != nil {
		return "", fmt.Errorf("read the new password: %w", err)
	}
	if strings.TrimSpace(p1) == "" {
		return "", errors.New("the new password is empty or only whitespace: choose a real one")
	}
	p2, err := ask("New password again: ")
	if err != nil {
		return "", fmt.Errorf("read the new password: %w", err)
	}
	if p1 != p2 {
		return "", errors.New("the two new passwords differ: nothing was changed")
	}
	return p1, nil
}
