package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/copier"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// CopyOptions are the flags of `copy`.
type CopyOptions struct {
	streams  genericiooptions.IOStreams
	from     locationOptions
	To       string
	output   outputOptions
	password passwordOptions
	Names    []string
	Selector string
	All      bool
	// UploadLimit and DownloadLimit bound the bandwidth into the second location and out of the
	// first (repo.ParseRate).
	UploadLimit, DownloadLimit string

	pw     string
	sel    labels.Selector
	limits repo.Limits
}

// NewCopyCmd builds `copy`.
func NewCopyCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &CopyOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "copy NAME... | --selector SEL | --all --to URL2 [--from URL]",
		Short: "Copy backups, with their volume data, into a second location (incremental, resumable)",
		Long: `Copy backups into a second location, which may be another store type: their manifests,
archives and logs, and the Kopia repositories that hold their volumes' snapshots. Each copy is a
full backup there: list, describe, verify, restore, ls and cp work from the second location alone.

Incremental: only what the second location lacks is moved (Kopia's blobs are written once under
content-addressed names), so copying the next backup moves about what its creation uploaded.
Resumable: an interrupted copy leaves no half backup (a backup's manifest goes last), and running
it again moves only the rest.

Keys: the second location shares the first's location key. Its key file is copied as it is, so the
same password opens both, and everything is copied encrypted as it is, never decrypted on the way.
A second location that already has a key of its own is refused (copy into a new location or
prefix). 'repo change-password' changes one location's password only.`,
		Example: fmt.Sprintf(examples(`
			# Copy last night's backup to a bucket in another region
			%[1]s copy nightly-2026-12-07 --from s3://backups/prod --to 's3://backups-dr/prod?region=eu-central-1'

			# Keep a second location in step: copy everything it lacks
			%[1]s copy --all --to 'gs://backups-dr/prod'

			# Copy in business hours without filling the link
			%[1]s copy --all --to 'gs://backups-dr/prod' --upload-limit 20MiB/s`), "kubectl pvbackup"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			return runSteps(cmd.Context(), o.Complete(), o)
		},
	}
	o.from.addFlag(cmd.Flags(), "from")
	cmd.Flags().StringVar(&o.To, "to", "", "the second location URL")
	o.output.addFlag(cmd.Flags())
	o.password.addFlag(cmd.Flags())
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "copy the backups whose labels match")
	cmd.Flags().BoolVar(&o.All, "all", false, "copy every backup of the location")
	cmd.Flags().StringVar(&o.UploadLimit, "upload-limit", "", "bytes per second written to the second location at most, e.g. 20MiB/s (units B, KB, MB, GB, KiB, MiB, GiB; default no limit)")
	cmd.Flags().StringVar(&o.DownloadLimit, "download-limit", "", "bytes per second read from the first location at most, e.g. 50MB/s (default no limit)")
	return cmd
}

// Complete reads the location, the password and the selector.
func (o *CopyOptions) Complete() error {
	o.from.complete()
	var err error
	if o.Selector != "" {
		if o.sel, err = labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("--selector %q: %w", o.Selector, err)
		}
	}
	if o.limits.UploadBytesPerSecond, err = repo.ParseRate(o.UploadLimit); err != nil {
		return fmt.Errorf("--upload-limit: %w", err)
	}
	if o.limits.DownloadBytesPerSecond, err = repo.ParseRate(o.DownloadLimit); err != nil {
		return fmt.Errorf("--download-limit: %w", err)
	}
	o.pw, err = o.password.load(o.streams.ErrOut)
	return err
}

// Validate checks the options without any I/O.
func (o *CopyOptions) Validate() error {
	chosen := 0
	for _, set := range []bool{len(o.Names) > 0, o.Selector != "", o.All} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		return errors.New("name the backups to copy, or pass --selector or --all (one of them)")
	}
	if o.To == "" {
		return errors.New("--to is required: the second location")
	}
	if _, _, err := store.Parse(o.To); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.from.validate()
}

// Run copies.
func (o *CopyOptions) Run(ctx context.Context) error {
	from, err := store.Open(ctx, o.from.URL)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := store.Open(ctx, o.To)
	if err != nil {
		return err
	}
	defer to.Close()
	res, err := copier.Run(ctx, copier.Deps{From: from, To: to, Password: o.pw, Progress: o.output.reporter(ctx, o.streams), Limits: o.limits},
		copier.Config{Names: o.Names, Selector: o.sel, All: o.All})
	if res != nil {
		if perr := o.print(res); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return err
	}
	if n := res.Failed(); n > 0 {
		return fmt.Errorf("%d of %d backups were not copied (named above): %w", n, len(res.Backups), ErrPartial)
	}
	return nil
}

func (o *CopyOptions) print(res *copier.Result) error {
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tACTION\tFILES\tBYTES\tERROR")
	for _, it := range res.Backups {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", it.Name, it.Action, it.Files, progress.Bytes(it.Bytes), orDash(it.Error))
	}
	for _, r := range res.Repositories {
		fmt.Fprintf(tw, "kopia/%s/\trepository\t%d\t%s\t%d blobs already there\n", r.Namespace, r.Blobs, progress.Bytes(r.Bytes), r.Present)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "Copied %s from %s to %s in %.1fs.\n", progress.Bytes(res.Bytes), res.From, res.To, res.Seconds)
	return nil
}
