package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// RepoMaintainOptions are the flags of `repo maintain`.
type RepoMaintainOptions struct {
	streams           genericiooptions.IOStreams
	location          locationOptions
	output            outputOptions
	password          passwordOptions
	Full              bool
	Safety            string
	IncludeNamespaces []string
	ExcludeNamespaces []string

	cfg maintenance.Config
}

// NewRepoMaintainCmd builds `repo maintain`.
func NewRepoMaintainCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &RepoMaintainOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "maintain [--from URL] [--full] [--include-namespaces NS,...] [--safety full|none]",
		Short: "Run Kopia's maintenance of the namespace repositories from this machine",
		Long: `maintain runs Kopia's own maintenance of each namespace repository of the location. Quick
maintenance (the default) compacts the indexes every mover reads when it opens a repository;
--full also drops the contents no snapshot references and deletes the packs that held only
them: it is what frees the space of deleted and pruned backups.

--safety full (the default) keeps Kopia's margins, so that a backup running at the same moment
never loses data: unreferenced contents are dropped only after two full runs at least 4 hours
apart, and their packs deleted once a day old. --safety none frees everything at once: use it
only when you know no backup, restore or other maintenance touches the location meanwhile.

One prune or maintenance runs at a time per location (a lease object, maintenance.lease):
a second one fails at once, naming the one running and when its lease expires.`,
		Example: fmt.Sprintf(examples(`
			# Compact the indexes of every repository
			%[1]s repo maintain --from s3://backups/prod

			# Free the space of deleted backups of namespace shop
			%[1]s repo maintain --full --include-namespaces shop`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	fs.BoolVar(&o.Full, "full", false, "full maintenance: also free the data no snapshot references")
	fs.StringVar(&o.Safety, "safety", string(maintenance.SafetyFull), "full (Kopia's margins: safe while backups run) or none (frees at once: only when nothing else uses the location)")
	fs.StringSliceVar(&o.IncludeNamespaces, "include-namespaces", nil, "repositories of these namespaces only, globs allowed (default all)")
	fs.StringSliceVar(&o.ExcludeNamespaces, "exclude-namespaces", nil, "leave out the repositories of these namespaces")
	return cmd
}

// Complete builds the configuration.
func (o *RepoMaintainOptions) Complete() error {
	o.location.complete()
	safety, err := maintenance.ParseSafety(o.Safety)
	if err != nil {
		return err
	}
	mode := maintenance.Quick
	if o.Full {
		mode = maintenance.Full
	}
	o.cfg = maintenance.Config{Namespaces: selection.NamespaceFilter{Include: o.IncludeNamespaces, Exclude: o.ExcludeNamespaces}, Mode: mode, Safety: safety}
	return nil
}

// Validate checks the options without any I/O.
func (o *RepoMaintainOptions) Validate() error {
	if err := o.cfg.Namespaces.Validate(); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// Run maintains the repositories and prints a summary per repository.
func (o *RepoMaintainOptions) Run(ctx context.Context) error {
	loc, err := store.Open(ctx, o.location.URL)
	if err != nil {
		return err
	}
	defer loc.Close()
	d := maintenance.Deps{Location: loc, Repos: newLocationKeys(ctx, loc, o.password.File, o.streams.ErrOut).repos(o.location.URL), Progress: o.output.reporter(ctx, o.streams)}
	res, err := maintenance.Run(ctx, d, o.cfg)
	if res != nil {
		if o.output.Format != "" {
			if perr := o.output.print(o.streams.Out, res); perr != nil {
				return perr
			}
		} else if len(res.Repositories) == 0 {
			fmt.Fprintf(o.streams.ErrOut, "No repositories to maintain in %s.\n", loc)
		} else if perr := printMaintenance(o.streams.Out, res.Repositories); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if res.Failed() {
		return fmt.Errorf("maintenance of %s: some repositories failed (named above): %w", loc, ErrPartial)
	}
	return nil
}
