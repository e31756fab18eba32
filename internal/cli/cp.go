package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/files"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// CpOptions are the flags of `cp`.
type CpOptions struct {
	filesOptions
	Dest             string
	Include, Exclude []string
	Parallel         int
	KeepSetID        bool
}

// NewCpCmd builds `cp`.
func NewCpCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &CpOptions{filesOptions: filesOptions{streams: streams}}
	cmd := &cobra.Command{
		Use:   "cp NAME NAMESPACE/PVC[:/path] LOCAL_DIR [--include GLOB] [--exclude GLOB]",
		Short: "Copy files of a volume backup to a local directory (no cluster needed)",
		Long: `cp copies a directory of a backed-up volume (its contents) or one file (under its name) into
LOCAL_DIR, with modes, times and symlinks (owners too when run as root, without the setuid and
setgid bits of files unless --keep-setid). Run again after an
interruption, it skips the files already complete. It never writes outside LOCAL_DIR, whatever the
backup holds: entries named '..', paths through symlinks that leave LOCAL_DIR, and the like are
refused and listed. It needs the bucket's credentials and the repository password only.

Patterns (path.Match: * and ? stay inside one name) without '/' match a name at any depth; with
'/' the path from the copied directory. --include keeps matching files and whole matching
directories; --exclude leaves matches out.`,
		Example: fmt.Sprintf(examples(`
			# Get a whole volume back as it was in backup shop-1
			%[1]s cp shop-1 shop/data ./data

			# A raw block volume (volumeMode: Block): its image, volume.img, sparse where the device was zero
			%[1]s cp vm-1 vms/disk ./disk

			# Only the logs, without the rotated ones
			%[1]s cp shop-1 shop/data:/var/log ./logs --include '*.log' --exclude 'old'`), "kubectl pvbackup"),
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args[:2]); err != nil {
				return err
			}
			o.Dest = args[2]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.run(cmd.Context(), o.Run)
		},
	}
	o.addFlags(cmd, true)
	cmd.Flags().StringArrayVar(&o.Include, "include", nil, "copy only files matching GLOB (repeatable)")
	cmd.Flags().StringArrayVar(&o.Exclude, "exclude", nil, "leave out files and directories matching GLOB (repeatable)")
	cmd.Flags().IntVar(&o.Parallel, "parallel", 8, "files copied at the same time")
	cmd.Flags().StringVar(&o.DownloadLimit, "download-limit", "", "bytes per second downloaded from the location at most, e.g. 20MiB/s (units B, KB, MB, GB, KiB, MiB, GiB; default no limit)")
	cmd.Flags().BoolVar(&o.KeepSetID, "keep-setid", false, "as root (owners restored), keep the setuid and setgid bits of files: by default they are dropped, since a file the backup's tenant made setuid would run as its owner, root included")
	return cmd
}

// Validate checks the options without I/O.
func (o *CpOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Dest == "" {
		return fmt.Errorf("LOCAL_DIR is empty")
	}
	if o.Parallel < 1 {
		return fmt.Errorf("--parallel %d: must be 1 or more", o.Parallel)
	}
	if err := files.ValidateGlobs("include", o.Include); err != nil {
		return err
	}
	return files.ValidateGlobs("exclude", o.Exclude)
}

// Run copies and prints what was done.
func (o *CpOptions) Run(ctx context.Context, d files.Deps) error {
	res, err := files.Copy(ctx, d, files.CopyConfig{
		Backup: o.Backup, Ref: o.Ref, Dest: o.Dest, Include: o.Include, Exclude: o.Exclude,
		Owners: os.Geteuid() == 0, KeepSetID: o.KeepSetID, Parallel: o.Parallel,
		Progress: files.ShowProgress(o.output.reporter(ctx, o.streams)),
	})
	if res == nil {
		return err
	}
	if o.output.Format != "" {
		if perr := o.output.print(o.streams.Out, res); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(o.streams.Out, "Copied %s (%s) into %s in %.1fs: %d complete already, %s, %s.\n", progress.Plural(int(res.Files), "file", "files"),
			progress.Bytes(res.Bytes), o.Dest, res.Seconds, res.Skipped, progress.Plural(int(res.Symlinks), "symlink", "symlinks"), progress.Plural(int(res.Dirs), "directory", "directories"))
		if res.HardLinks > 0 {
			fmt.Fprintf(o.streams.Out, "%s made again.\n", progress.Plural(int(res.HardLinks), "hard link", "hard links"))
		}
		for _, p := range res.Refused {
			fmt.Fprintf(o.streams.Out, "  refused: %s: %s\n", printable.Name(p.Path), printable.Name(p.Reason))
		}
		for _, p := range res.Errors {
			fmt.Fprintf(o.streams.Out, "  failed: %s: %s\n", printable.Name(p.Path), printable.Name(p.Reason))
		}
	}
	if errors.Is(err, files.ErrIncomplete) {
		return fmt.Errorf("%w: %w", err, ErrPartial)
	}
	return err
}
