package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
)

// NewVeleroCmd builds `velero`: read the backups Velero wrote, with nothing of Velero installed.
func NewVeleroCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "velero",
		Short: "Read the backups Velero wrote to a bucket, without Velero and without writing to the bucket",
		Long: `Read the backups Velero (1.x) wrote to its backup storage location: what each holds, and
for each volume where its data is and whether kubectl pvbackup can restore it.

--from-velero is the location as a URL whose path is the BackupStorageLocation's prefix, e.g.
s3://velero-bucket/prod?region=eu-west-1 for bucket "velero-bucket" and prefix "prod". Nothing
is ever written there: no cluster and no password are needed to list or describe.`,
	}
	cmd.AddCommand(NewVeleroListCmd(streams), NewVeleroDescribeCmd(streams), NewVeleroRestoreCmd(flags, streams))
	return cmd
}

// veleroLocationOptions is --from-velero.
type veleroLocationOptions struct {
	URL string
}

func (o *veleroLocationOptions) addFlag(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "from-velero", "", "Velero's backup storage location: a URL whose path is its prefix (s3://bucket/prefix?region=..., gs://, azblob://, file:///dir)")
}

func (o *veleroLocationOptions) validate() error {
	if o.URL == "" {
		return errors.New("--from-velero is required: the URL of Velero's backup storage location (its bucket, with its prefix as the path)")
	}
	return nil
}

func (o *veleroLocationOptions) open(ctx context.Context) (*velero.Location, error) {
	return velero.Open(ctx, o.URL)
}

// veleroReadOptions are the flags of list and describe.
type veleroReadOptions struct {
	streams  genericiooptions.IOStreams
	location veleroLocationOptions
	output   outputOptions
	Name     string
}

func (o *veleroReadOptions) addFlags(fs *pflag.FlagSet) {
	o.location.addFlag(fs)
	o.output.addFlag(fs)
}

// Validate checks the options without any I/O.
func (o *veleroReadOptions) Validate() error {
	if err := o.location.validate(); err != nil {
		return err
	}
	if o.Name != "" {
		if err := velero.ValidateName(o.Name); err != nil {
			return err
		}
	}
	return o.output.validate()
}

// runVeleroRead opens the location and runs fn on it.
func (o *veleroReadOptions) run(ctx context.Context, fn func(context.Context, *velero.Location) error) error {
	if err := o.Validate(); err != nil {
		return err
	}
	loc, err := o.location.open(ctx)
	if err != nil {
		return err
	}
	defer loc.Close() //nolint:errcheck // read-only
	return fn(ctx, loc)
}

// sizeOrDash formats a byte count, "-" for none.
func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return progress.Bytes(n)
}

// timeOrDash formats a time as RFC 3339, "-" for none.
func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
