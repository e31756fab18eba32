package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// repoKeyOptions are the flags of `repo export-key` and `repo import-key`.
type repoKeyOptions struct {
	streams  genericiooptions.IOStreams
	location locationOptions
	password passwordOptions
	File     string
}

func (o *repoKeyOptions) command(use, short, long, example string, run func(context.Context, *store.Location, string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: fmt.Sprintf(examples(example), "kubectl pvbackup"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			o.location.complete()
			if err := o.location.validate(); err != nil {
				return err
			}
			pw, err := o.password.load(o.streams.ErrOut)
			if err != nil {
				return err
			}
			loc, err := store.Open(cmd.Context(), o.location.URL)
			if err != nil {
				return err
			}
			defer loc.Close()
			return run(cmd.Context(), loc, pw)
		},
	}
	o.location.addFlag(cmd.Flags(), "from")
	o.password.addFlag(cmd.Flags())
	return cmd
}

func newRepoExportKeyCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &repoKeyOptions{streams: streams}
	return o.command("export-key FILE [--from URL]", "Save an offline copy of the location's key (wrapped by the password)",
		`export-key writes the location's key file (keys/location.age), as the bucket holds it, to FILE:
the location key wrapped by the password, useless without it. Keep it away from the bucket (a
password manager, a safe): if keys/location.age and the copies kept with the backups are all
lost, `+"`repo import-key FILE`"+` puts it back and every backup opens again. After
`+"`repo change-password`"+`, export again: the file opens with the password it was exported under.`, `
			# Keep an offline copy of the key of a location
			%[1]s repo export-key prod-key.age --from 's3://backups/prod?region=eu-west-1'`,
		func(ctx context.Context, loc *store.Location, pw string) error {
			kr, err := keyring.Open(ctx, loc, pw)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists: export to a new file (nothing was written)", o.File)
			}
			if err != nil {
				return err
			}
			_, err = f.Write(kr.Wrapped())
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(o.File)
				return fmt.Errorf("write %s: %w", o.File, err)
			}
			fmt.Fprintf(o.streams.Out, "Exported the key of %s to %s (wrapped by the password; keep it away from the bucket).\n", loc, o.File)
			if kr.Damage != "" {
				fmt.Fprintf(o.streams.ErrOut, "warning: %s: %s\n", kr.Damage, keyHint)
			}
			return nil
		})
}

func newRepoImportKeyCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &repoKeyOptions{streams: streams}
	return o.command("import-key FILE [--from URL]", "Put an exported key back as the location's key file",
		`import-key writes FILE (from `+"`repo export-key`"+`) back as keys/location.age when that is missing
or damaged. FILE must open with the password, and hold the same key as the location's key file or
its copies when one of them opens: a key of another location is refused.`, `
			# The location's key file was deleted: put the offline copy back
			%[1]s repo import-key prod-key.age --from 's3://backups/prod?region=eu-west-1'`,
		func(ctx context.Context, loc *store.Location, pw string) error {
			data, err := readKeyExport(o.File)
			if err != nil {
				return err
			}
			replaced, err := keyring.Import(ctx, loc, pw, data)
			if err != nil {
				return err
			}
			if !replaced {
				fmt.Fprintf(o.streams.Out, "%s of %s is in place and holds this key: nothing to do.\n", keyring.KeyFile, loc)
				return nil
			}
			fmt.Fprintf(o.streams.Out, "Wrote %s of %s from %s.\n", keyring.KeyFile, loc, o.File)
			return nil
		})
}

// readKeyExport reads an export, a small regular file.
func readKeyExport(file string) ([]byte, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 16<<10 {
		return nil, fmt.Errorf("%s is not a key export (a regular file of at most 16 KiB)", file)
	}
	return os.ReadFile(file)
}
