package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/verify"
)

// VerifyOptions are the flags of `verify`.
type VerifyOptions struct {
	streams  genericiooptions.IOStreams
	location locationOptions
	output   outputOptions
	password passwordOptions
	All      bool
	ReadData string

	cfg verify.Config
}

// NewVerifyCmd builds `verify`.
func NewVerifyCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "verify NAME... | --all [--read-data PERCENT]",
		Short: "Prove backups are complete and readable, from this machine, without a cluster",
		Long: `verify checks, with the bucket's credentials and the password only, that a backup can be restored:
backup.json parses, the resources archive decrypts and every object in it parses, and every Kopia
snapshot of its volumes is in its namespace repository with its whole tree, every directory read
and every file's contents present in the index and in packs that exist and are long enough.
--read-data PERCENT also reads that share of the files back in full (100: all), which fetches,
decrypts and authenticates their data.

Each volume's result is printed; the exit code is 1 when anything is missing or damaged, and the
error names the backup, the volume and the path.`,
		Example: fmt.Sprintf(examples(`
			# Check backup shop-1 and read a tenth of its data back
			%[1]s verify shop-1 --read-data 10

			# Check every backup of the location, nightly from CI
			%[1]s verify --all --from s3://backups/prod`), "kubectl pvbackup"),
		RunE: func(cmd *cobra.Command, args []string) error { return runSteps(cmd.Context(), o.Complete(args), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	fs.BoolVar(&o.All, "all", false, "verify every backup of the location")
	fs.StringVar(&o.ReadData, "read-data", "0", "share of the file data to read back, 0-100 (a % sign is allowed)")
	return cmd
}

// Complete builds the configuration.
func (o *VerifyOptions) Complete(args []string) error {
	o.location.complete()
	pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(o.ReadData), "%"), 64)
	if err != nil || pct < 0 || pct > 100 {
		return fmt.Errorf("--read-data %q: use a percentage from 0 to 100", o.ReadData)
	}
	o.cfg = verify.Config{Names: args, All: o.All, ReadPercent: pct}
	return nil
}

// Validate checks the options without any I/O.
func (o *VerifyOptions) Validate() error {
	if o.All == (len(o.cfg.Names) > 0) {
		return fmt.Errorf("name the backups to verify, or pass --all (not both)")
	}
	for _, n := range o.cfg.Names {
		if err := catalog.ValidateName(n); err != nil {
			return err
		}
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// Run verifies and prints a line per archive and per volume.
func (o *VerifyOptions) Run(ctx context.Context) error {
	cat, closeFn, err := o.location.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	keys := newLocationKeys(ctx, cat.Location(), o.password.File, o.streams.ErrOut)
	d := verify.Deps{Catalog: cat, Repos: keys.repos(o.location.URL), Progress: o.output.reporter(ctx, o.streams),
		ArchivePassword: keys.archive}
	res, err := verify.Run(ctx, d, o.cfg)
	if res != nil {
		if perr := o.print(res); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if failed := res.Failed(); len(failed) > 0 {
		return fmt.Errorf("%s damaged or incomplete in %s: %s", progress.Plural(len(failed), "backup is", "backups are"), cat.Location(), firstProblems(res))
	}
	return nil
}

// firstProblems names, per failed backup, its first problem: the archive, or a volume and path.
func firstProblems(res *verify.Result) string {
	var parts []string
	for _, b := range res.Backups {
		if b.OK || b.Skipped != "" {
			continue
		}
		if len(b.Problems) > 0 {
			parts = append(parts, fmt.Sprintf("%s: %s", b.Name, b.Problems[0]))
			continue
		}
		for _, v := range b.Volumes {
			if !v.OK && v.Skipped == "" {
				parts = append(parts, fmt.Sprintf("%s: volume %s/%s: %s", b.Name, v.Namespace, v.PVC, v.Error))
				break
			}
		}
	}
	return strings.Join(parts, "; ")
}

func (o *VerifyOptions) print(res *verify.Result) error {
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	q := printable.Name // names and messages from the bucket
	fmt.Fprintln(tw, "BACKUP\tPART\tRESULT\tFILES\tREAD BACK\tDETAIL")
	for _, b := range res.Backups {
		if b.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\tskipped\t-\t-\t%s\n", q(b.Name), q(b.Skipped))
			continue
		}
		result, detail := "ok", progress.Plural(b.ArchiveObjects, "object", "objects")
		if len(b.Problems) > 0 {
			result, detail = "FAILED", strings.Join(b.Problems, "; ")
		}
		fmt.Fprintf(tw, "%s\tresources\t%s\t-\t-\t%s\n", q(b.Name), result, q(detail))
		for _, v := range b.Volumes {
			result, files, read, detail := "ok", "-", "-", v.KopiaSnapshot
			switch {
			case v.Skipped != "":
				result, detail = "skipped", v.Skipped
			case !v.OK:
				result, detail = "FAILED", v.Error
			}
			if v.VerifyStats != nil {
				files = fmt.Sprint(v.Files)
				if v.HardLinks > 0 {
					files += fmt.Sprintf(" (%d hard links)", v.HardLinks)
				}
				read = fmt.Sprintf("%d (%s)", v.ReadFiles, progress.Bytes(v.ReadBytes))
				for _, p := range v.Problems[min(1, len(v.Problems)):] {
					detail += fmt.Sprintf("; %s: %s", p.Path, p.Error)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", q(b.Name), q(v.Namespace+"/"+v.PVC), result, files, read, q(detail))
		}
	}
	return tw.Flush()
}
