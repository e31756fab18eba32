package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// DefaultResultPath is the container's default terminationMessagePath.
const DefaultResultPath = mover.DefaultResultPath

// MoverOptions are the settings shared by `mover backup` and `mover restore`.
type MoverOptions struct {
	Location     string
	Namespace    string
	PasswordFile string
	Parallel     int
	OnError      string
	Result       string
	CacheDir     string
	Debug        bool
	// UploadLimit and DownloadLimit are rates (repo.ParseRate); limits is what they say.
	UploadLimit, DownloadLimit string
	limits                     repo.Limits

	// backup
	Source, PVC, Backup, Compression string
	// restore
	Snapshot, FromDir, Target string
	SkipOwners, Sparse        bool
	RequireEmpty              bool
	SubPath                   string
	Sync, DiffOnly            bool
	// Block: the source or target is a block device (volumeMode: Block).
	Block    bool
	ReadOnly bool

	password string
	streams  genericiooptions.IOStreams
}

// NewMoverCmd is the hidden in-pod side of the plugin: it runs inside the Jobs the plugin creates.
func NewMoverCmd(ctx context.Context, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "mover",
		Short:  "Move volume data between a mounted directory and the Kopia repository (runs inside mover Jobs)",
		Hidden: true,
		Long: `The mover runs inside the Jobs that kubectl pvbackup creates. It prints progress as JSON lines
on stdout (at most twice a second), writes its result as JSON to --result (the container's
termination message) and exits non-zero with a one-line reason when it fails.

Every flag can be given as an environment variable instead (PVBACKUP_LOCATION, PVBACKUP_PASSWORD or
PVBACKUP_PASSWORD_FILE, PVBACKUP_SOURCE_NAMESPACE, PVBACKUP_PVC, ...); storage credentials come from
the variables the storage SDKs read (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).`,
	}
	cmd.AddCommand(newMoverBackupCmd(ctx, streams), newMoverRestoreCmd(ctx, streams), newMoverProbeCmd(ctx, streams))
	return cmd
}

func (o *MoverOptions) addCommonFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Location, "location", "", "backup location URL, e.g. s3://bucket/prefix?region=eu-west-1 (env "+store.EnvLocation+")")
	f.StringVar(&o.Namespace, "source-namespace", "", "namespace the volume belongs to: selects the repository <prefix>/kopia/<namespace>/ (env "+mover.EnvSourceNamespace+")")
	f.StringVar(&o.PasswordFile, "password-file", "", "file holding the repository password (env "+mover.EnvPasswordFile+"; else env "+password.EnvPassword+")")
	f.IntVar(&o.Parallel, "parallel", 0, "files (and 64 MiB parts of bigger files; on a block restore, the image's chunks) processed in parallel (0 = the CPU limit, at least 2, for backup; 8 for restore; env "+mover.EnvParallel+")")
	f.StringVar(&o.OnError, "on-error", "", "a file that cannot be read or written: fail (default) or skip, naming it in the result (env "+mover.EnvOnError+")")
	f.StringVar(&o.Result, "result", "", "file the final result is written to as JSON (default "+DefaultResultPath+"; env "+mover.EnvResult+"; \"-\" for none)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "parent of Kopia's temporary cache directory (default $TMPDIR; env "+mover.EnvCacheDir+")")
	f.StringVar(&o.UploadLimit, "upload-limit", "", "bytes per second uploaded to the location at most, e.g. 20MiB/s (B, KB, MB, GB, KiB, MiB, GiB; default no limit; env "+mover.EnvUploadLimit+")")
	f.StringVar(&o.DownloadLimit, "download-limit", "", "bytes per second downloaded from the location at most, e.g. 50MB/s (default no limit; env "+mover.EnvDownloadLimit+")")
	f.BoolVar(&o.Debug, "debug", false, "keep the storage calls of the open (and any slower than 1s) with HTTP timings in the result (env "+mover.EnvDebug+")")
}

// Complete fills unset flags from the environment and reads the password.
func (o *MoverOptions) Complete(cmd *cobra.Command) error {
	if err := o.fromEnv(cmd); err != nil {
		return err
	}
	p, err := password.Load(o.PasswordFile) // a mounted Secret file has the mode Kubernetes gives it: no warning
	if err != nil {
		return err
	}
	o.password = p
	return nil
}

// fromEnv fills unset flags from the environment: every flag falls back to its variable of the
// plugin ↔ mover contract.
func (o *MoverOptions) fromEnv(cmd *cobra.Command) error {
	for _, fe := range mover.FlagEnv {
		f := cmd.Flags().Lookup(fe.Flag)
		v := os.Getenv(fe.Env)
		if f == nil || f.Changed || v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			if fe.Flag == "parallel" {
				return fmt.Errorf("%s=%q is not a number", fe.Env, v)
			}
			return fmt.Errorf("%s=%q: %w", fe.Env, v, err)
		}
	}
	switch o.Result {
	case "":
		o.Result = DefaultResultPath
	case "-":
		o.Result = ""
	}
	return nil
}

// Validate checks the settings without I/O.
func (o *MoverOptions) Validate() error {
	if o.Location == "" {
		return fmt.Errorf("no backup location: pass --location or set %s", store.EnvLocation)
	}
	if _, _, err := store.Parse(o.Location); err != nil {
		return err
	}
	if o.Namespace == "" {
		return fmt.Errorf("no source namespace: pass --source-namespace or set %s", mover.EnvSourceNamespace)
	}
	if o.OnError != "" && o.OnError != mover.OnErrorFail && o.OnError != mover.OnErrorSkip {
		return fmt.Errorf("--on-error %q: use fail or skip", o.OnError)
	}
	if o.Parallel < 0 {
		return fmt.Errorf("--parallel %d: must be 0 or more", o.Parallel)
	}
	if err := repo.ValidateCompression(o.Compression); err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	var err error
	if o.limits.UploadBytesPerSecond, err = repo.ParseRate(o.UploadLimit); err != nil {
		return fmt.Errorf("--upload-limit: %w", err)
	}
	if o.limits.DownloadBytesPerSecond, err = repo.ParseRate(o.DownloadLimit); err != nil {
		return fmt.Errorf("--download-limit: %w", err)
	}
	return nil
}

func (o *MoverOptions) settings() mover.Settings {
	return mover.Settings{Location: o.Location, Namespace: o.Namespace, Password: o.password, CacheDir: o.CacheDir, Compression: o.Compression, Debug: o.Debug, ReadOnly: o.ReadOnly, Limits: o.limits}
}

// finish writes the result file; a failure to write it is reported but does not hide err.
func (o *MoverOptions) finish(res *mover.Result, err error) error {
	if werr := mover.WriteResult(o.Result, res); werr != nil {
		fmt.Fprintln(o.streams.ErrOut, "warning:", werr)
	}
	return err
}

// failEarly records a settings error in the result file too, so the plugin sees why the pod failed.
func (o *MoverOptions) failEarly(op string, err error) error {
	if o.Result == "" {
		o.Result = DefaultResultPath
	}
	return o.finish(&mover.Result{Op: op, Error: err.Error()}, err)
}

func newMoverBackupCmd(ctx context.Context, streams genericiooptions.IOStreams) *cobra.Command {
	o := &MoverOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "backup --source DIR --location URL --source-namespace NS --pvc NAME",
		Short: "Upload a directory as a snapshot of a PVC into the namespace's repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return o.failEarly(mover.OpBackup, err)
			}
			if err := o.Validate(); err != nil {
				return o.failEarly(mover.OpBackup, err)
			}
			res, err := mover.RunBackup(ctx, o.settings(), mover.BackupConfig{
				Source: o.Source, PVC: o.PVC, Backup: o.Backup, Parallel: o.Parallel, OnError: o.OnError,
				Compression: o.Compression, Block: o.Block,
			}, mover.JSONLines(streams.Out))
			return o.finish(res, err)
		},
	}
	o.addCommonFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Source, "source", "", "directory to back up (env "+mover.EnvSource+")")
	f.StringVar(&o.PVC, "pvc", "", "name of the PVC the directory holds: its previous snapshot is the parent (env "+mover.EnvPVC+")")
	f.StringVar(&o.Backup, "backup", "", "backup name, recorded as a snapshot tag (env "+mover.EnvBackup+")")
	f.StringVar(&o.Compression, "compression", "", "compression of this backup: "+repo.CompressionAuto+" (default: "+repo.AutoCompressor+" for what may compress), "+repo.CompressionNone+", or a Kopia compressor (zstd-fastest, s2-default, ...) (env "+mover.EnvCompression+")")
	f.BoolVar(&o.Block, "block", false, "--source is a block device (a volumeMode: Block claim), backed up as one file "+mover.BlockEntry+" (env "+mover.EnvBlock+")")
	return cmd
}

func newMoverRestoreCmd(ctx context.Context, streams genericiooptions.IOStreams) *cobra.Command {
	o := &MoverOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "restore --snapshot ID --target DIR --location URL --source-namespace NS",
		Short: "Restore a snapshot from the namespace's repository into a directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return o.failEarly(mover.OpRestore, err)
			}
			if err := o.Validate(); err != nil {
				return o.failEarly(mover.OpRestore, err)
			}
			res, err := mover.RunRestore(ctx, o.settings(), mover.RestoreConfig{
				SnapshotID: o.Snapshot, FromDir: o.FromDir, Target: o.Target, Parallel: o.Parallel, OnError: o.OnError,
				SkipOwners: o.SkipOwners, Sparse: o.Sparse, RequireEmpty: o.RequireEmpty, SubPath: o.SubPath,
				Sync: o.Sync, DiffOnly: o.DiffOnly, Block: o.Block,
			}, mover.JSONLines(streams.Out))
			return o.finish(res, err)
		},
	}
	o.addCommonFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Snapshot, "snapshot", "", "Kopia snapshot ID to restore (env "+mover.EnvSnapshot+")")
	f.StringVar(&o.FromDir, "from-dir", "", "restore from this directory instead of a snapshot: a volume made from a kept VolumeSnapshot (env "+mover.EnvFromDir+")")
	f.StringVar(&o.Target, "target", "", "directory to restore into (env "+mover.EnvTarget+")")
	f.BoolVar(&o.Block, "block", false, "--target (and --from-dir) are block devices: the snapshot's "+mover.BlockEntry+" is written over the device (env "+mover.EnvBlock+")")
	f.BoolVar(&o.SkipOwners, "skip-owners", false, "do not restore file owners (env "+mover.EnvSkipOwners+")")
	f.BoolVar(&o.Sparse, "sparse", true, "write runs of zeros as holes (env "+mover.EnvSparse+")")
	f.BoolVar(&o.RequireEmpty, "require-empty", false, "fail, writing nothing, when the target holds anything but lost+found (env "+mover.EnvRequireEmpty+")")
	f.BoolVar(&o.Sync, "sync", false, "make the target equal to the snapshot: remove what it does not have, keep files whose size and time match (env "+mover.EnvSync+")")
	f.BoolVar(&o.DiffOnly, "diff-only", false, "write nothing: report in the result what --sync would change (env "+mover.EnvDiffOnly+")")
	f.StringVar(&o.SubPath, "sub-path", "", "restore only this directory of the snapshot, to the same path in the target (env "+mover.EnvSubPath+")")
	f.BoolVar(&o.ReadOnly, "read-only", false, "open the repository read-only, as another tool's (Velero's): nothing is written to the bucket (env "+mover.EnvReadOnly+")")
	return cmd
}

// newMoverProbeCmd is doctor's probe inside the cluster: it writes a token into the mounted volume
// (or reads it back from a volume restored from a snapshot) and writes and deletes a marker in
// the namespace's repository prefix of the location, as a mover reaches it. It opens no
// repository, so it needs no key.
func newMoverProbeCmd(ctx context.Context, streams genericiooptions.IOStreams) *cobra.Command {
	o := &MoverOptions{streams: streams}
	var cfg mover.ProbeConfig
	cmd := &cobra.Command{
		Use:    "probe --target DIR --token TOKEN [--verify] [--location URL --source-namespace NS]",
		Short:  "Write or read back a file in the mounted volume and reach the backup location (doctor's live probe)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.fromEnv(cmd); err != nil {
				return o.failEarly(mover.OpProbe, err)
			}
			res, err := mover.RunProbe(ctx, mover.Settings{Location: o.Location, Namespace: o.Namespace}, cfg, mover.JSONLines(streams.Out))
			return o.finish(res, err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Location, "location", "", "backup location URL; none: the volume alone is probed (env "+store.EnvLocation+")")
	f.StringVar(&o.Namespace, "source-namespace", "", "namespace whose repository prefix <prefix>/kopia/<namespace>/ the marker goes to (env "+mover.EnvSourceNamespace+")")
	f.StringVar(&o.Result, "result", "", "file the final result is written to as JSON (default "+DefaultResultPath+"; env "+mover.EnvResult+"; \"-\" for none)")
	f.StringVar(&cfg.Target, "target", "", "the mounted volume (env "+mover.EnvTarget+")")
	f.StringVar(&cfg.Token, "token", "", "what is written into the volume, or expected with --verify (env "+mover.EnvProbeToken+")")
	f.BoolVar(&cfg.Verify, "verify", false, "read the file back instead of writing it (env "+mover.EnvProbeVerify+")")
	return cmd
}
