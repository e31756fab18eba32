package mover

import (
	"cmp"
	"context"
	"path"
	"path/filepath"

	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/restore"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"github.com/kopia/kopia/snapshot/upload"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// What to do with a file that cannot be read (backup) or written (restore).
const (
	OnErrorFail = "fail" // the operation fails and names the files; a backup saves no snapshot
	OnErrorSkip = "skip" // the files are left out, named in the result; the operation succeeds
)

// BackupConfig says what to upload.
type BackupConfig struct {
	Source    string // the mounted volume
	Namespace string // source namespace: the repository and the snapshot's source host
	PVC       string // the claim: the snapshot's source path, so its previous snapshot is the parent
	Backup    string // the plugin's backup name, as a tag
	Parallel  int    // files (and parts of big files) hashed and uploaded in parallel (0 = DefaultParallel())
	OnError   string // OnErrorFail (default) or OnErrorSkip
	// Compression is the backup's compression: none, auto or a Kopia compressor ("" =
	// repo.DefaultCompression); it applies to the data written now, whatever earlier backups used.
	Compression string
	// ParallelAbove splits files bigger than this into parts uploaded in parallel, each a
	// ParallelAbove-sized object (0 = DefaultParallelAbove).
	ParallelAbove int64
	// Block: Source is a block device (a Block claim mapped with volumeDevices), backed up as
	// the one file BlockEntry (block.go).
	Block bool
	// blockSplitter, in tests, cuts a block image as versions before TagBlockSplitter did: with
	// this splitter, and no tag.
	blockSplitter string
}

// DefaultParallelAbove is the size above which a file is split into parts uploaded in parallel
// (Kopia's default is 2 GiB, so one 2 GiB file is one stream): 64 MiB parts keep every core busy
// on one big file, and, at fixed offsets, an unchanged part still deduplicates.
const DefaultParallelAbove = 64 << 20

// DefaultParallel is how many files or parts a backup reads and uploads at once: the Go
// runtime's GOMAXPROCS, which follows the container's CPU limit (a 1-CPU mover on a 32-core node
// runs 1, where Kopia's NumCPU would run 32), and at least 2 so that reading one overlaps
// uploading another.
func DefaultParallel() int { return max(runtime.GOMAXPROCS(0), 2) }

// RestoreConfig says what to restore where.
type RestoreConfig struct {
	SnapshotID string
	// FromDir, instead of SnapshotID, restores from a directory: a volume made from the
	// VolumeSnapshot a snapshot-mode backup kept, mounted read-only beside Target. No repository
	// is opened.
	FromDir    string
	Target     string // the mounted (empty) volume
	Parallel   int    // files (a block image's chunks) restored in parallel (0 = 8, as the kopia CLI)
	OnError    string
	SkipOwners bool // do not chown (a non-root mover cannot)
	Sparse     bool // write runs of zeros as holes
	// RequireEmpty fails, writing nothing, when Target holds anything but lost+found.
	RequireEmpty bool
	// SubPath, when set, restores only that directory (or file) of the snapshot, to the same
	// path under Target.
	SubPath string
	// Sync makes Target equal to the snapshot: entries not in it are removed, files whose size
	// and modification time match are left as they are, the rest rewritten (in-place restore).
	Sync bool
	// DiffOnly writes nothing: the Result's Diff says what Sync would change.
	DiffOnly bool
	// Block: Target (and FromDir) are block devices; the snapshot's BlockEntry is written to
	// Target whole (block.go).
	Block bool
}

// SourceInfo is the Kopia source of a PVC's snapshots: parents are found by it.
func SourceInfo(namespace, pvc string) snapshot.SourceInfo {
	return snapshot.SourceInfo{Host: namespace, UserName: repo.ClientUser, Path: "/" + pvc}
}

func (c *BackupConfig) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{{"source directory", c.Source}, {"namespace", c.Namespace}, {"pvc", c.PVC}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("backup needs a %s", strings.Join(missing, ", a "))
	}
	if c.OnError == "" {
		c.OnError = OnErrorFail
	}
	if c.OnError != OnErrorFail && c.OnError != OnErrorSkip {
		return fmt.Errorf("on-error %q: use fail or skip", c.OnError)
	}
	if err := repo.ValidateCompression(c.Compression); err != nil {
		return fmt.Errorf("compression: %w", err)
	}
	if c.Block {
		return checkBlock(c.Source, "source")
	}
	st, err := os.Stat(c.Source)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("source %s is not a directory", c.Source)
	}
	return nil
}

// Backup uploads cfg.Source into r as a snapshot of the PVC, with the PVC's previous snapshot as
// parent, reporting to sink. The Result is filled even when an error is returned.
func Backup(ctx context.Context, r kopiarepo.Repository, cfg BackupConfig, sink Sink) (*Result, error) {
	start := time.Now()
	res := &Result{Op: OpBackup, Namespace: cfg.Namespace, PVC: cfg.PVC, Backup: cfg.Backup}
	fail := func(err error) (*Result, error) {
		res.Error = oneLine(err.Error())
		res.DurationSeconds = time.Since(start).Seconds()
		return res, err
	}
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	sink(Event{Time: start.UTC(), Event: EventStart, Op: OpBackup})
	s := &backupSession{r: r, cfg: cfg, sink: sink, res: res, links: &backupLinks{}} // a block device's image has no hard links
	if !cfg.Block {
		var err error
		if s.links, err = scanLinks(ctx, cfg.Source, res); err != nil {
			return fail(err)
		}
	}
	var err error
	if s.override, err = backupPolicy(cfg); err != nil {
		return fail(err)
	}
	err = kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "pvbackup mover backup"}, s.run)
	s.count()
	if err != nil {
		res.SnapshotID = ""
		return fail(err)
	}
	res.OK = true
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

// backupSession is one Backup's write session: it uploads the source with the PVC's previous
// snapshot as parent and saves the snapshot, counting as it goes.
type backupSession struct {
	r        kopiarepo.Repository
	cfg      BackupConfig
	sink     Sink
	res      *Result
	links    *backupLinks
	override *policy.Policy
	// splitter is a block image's, chosen to match its previous snapshot's ("" for a directory).
	splitter string
	c        counters
	man      *snapshot.Manifest // the upload's, also when it stopped
}

func (s *backupSession) run(ctx context.Context, w kopiarepo.RepositoryWriter) error {
	cfg := s.cfg
	si := SourceInfo(cfg.Namespace, cfg.PVC)
	previous, err := snapshot.FindPreviousManifests(ctx, w, si, nil)
	if err != nil {
		return fmt.Errorf("find previous snapshots of %s/%s: %w", cfg.Namespace, cfg.PVC, err)
	}
	if len(previous) > 0 {
		s.res.ParentID = string(previous[0].ID)
	}
	if cfg.Block {
		s.splitter = cmp.Or(cfg.blockSplitter, blockSplitterFor(previous))
		s.override.SplitterPolicy.Algorithm = s.splitter
	}
	tree, err := policy.TreeForSourceWithOverride(ctx, w, si, s.override)
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	entry, closeSource, err := sourceEntry(cfg)
	if err != nil {
		return err
	}
	defer closeSource()
	if entry, err = s.links.attach(entry); err != nil {
		return err
	}
	if s.man, err = s.upload(ctx, w, entry, tree, si, previous); err != nil {
		return fmt.Errorf("upload %s: %w", cfg.Source, err)
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.save(ctx, w)
}

// upload hashes and uploads entry, cancelled with ctx, with progress events to the sink.
func (s *backupSession) upload(ctx context.Context, w kopiarepo.RepositoryWriter, entry fs.Entry, tree *policy.Tree, si snapshot.SourceInfo, previous []*snapshot.Manifest) (*snapshot.Manifest, error) {
	if repo.IsAuto(s.cfg.Compression) {
		w = repo.SampleCompression(w)
	}
	u := newUploader(w, s.cfg)
	u.Progress = newUploadProgress(&s.c, s.sink)
	stopCancel := context.AfterFunc(ctx, u.Cancel)
	defer stopCancel()

	uc, _ := s.r.(uploadCounter)
	stop := s.c.ticker(ctx, s.sink, OpBackup, uc)
	defer stop()
	return u.Upload(ctx, entry, tree, si, previous...)
}

// check refuses to save an upload that was cancelled, stopped, or (without --on-error skip)
// could not read some files.
func (s *backupSession) check(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.man.IncompleteReason != "" {
		return fmt.Errorf("upload %s stopped: %s", s.cfg.Source, s.man.IncompleteReason)
	}
	if n := fatalErrors(s.man); n > 0 && s.cfg.OnError != OnErrorSkip {
		return fmt.Errorf("%d file(s) or directories could not be read, first %s (fix their permissions or pass --on-error skip to back up the rest); no snapshot was saved",
			n, describeErrors(s.c.fileErrors()))
	}
	return nil
}

// save tags the snapshot with its namespace, PVC, backup and hard links, and saves it.
func (s *backupSession) save(ctx context.Context, w kopiarepo.RepositoryWriter) error {
	man, cfg := s.man, s.cfg
	man.Tags = map[string]string{repo.TagNamespace: cfg.Namespace, repo.TagPVC: cfg.PVC}
	s.links.tag(man.Tags)
	if s.splitter != "" && cfg.blockSplitter == "" {
		man.Tags[TagBlockSplitter] = s.splitter
	}
	if cfg.Backup != "" {
		man.Tags[repo.TagBackup] = cfg.Backup
	}
	man.Description = "kubectl-pvbackup " + cfg.Backup
	id, err := snapshot.SaveSnapshot(ctx, w, man)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	s.res.SnapshotID = string(id)
	return nil
}

// count fills the result's counts: the counters', then the snapshot's, whose root summary
// counts every file (Kopia's Stats count only those it hashed this time), and the hard links.
func (s *backupSession) count() {
	res, c := s.res, &s.c
	res.Files = int64(c.files.Load())
	res.Bytes = c.bytes.Load()
	res.UploadedBytes = c.uploaded.Load()
	if uc, ok := s.r.(uploadCounter); ok {
		res.UploadedBytes = uc.UploadedBytes() // after the session's flush
	}
	res.CachedFiles = c.cached.Load()
	res.ErrorCount = c.errCount.Load()
	res.Errors = c.fileErrors()
	if man := s.man; man != nil {
		res.CachedFiles = int64(man.Stats.CachedFiles)
		res.Files, res.Dirs, res.Bytes = int64(man.Stats.TotalFileCount)+res.CachedFiles, int64(man.Stats.TotalDirectoryCount), man.Stats.TotalFileSize
		if man.RootEntry != nil && man.RootEntry.DirSummary != nil {
			ds := man.RootEntry.DirSummary
			res.Files, res.Dirs, res.Bytes = ds.TotalFileCount, ds.TotalDirCount, ds.TotalFileSize
		}
	}
	s.links.count(res)
}

// backupPolicy is what a backup sets over the repository's policies: its error handling and its
// compression, none of it merged with a repository policy's (a global policy written by the kopia
// CLI, say): the extension lists replace the parents' (NoParent...), and the size bounds are set
// (Kopia's merge takes a parent's value for a zero one).
func backupPolicy(cfg BackupConfig) (*policy.Policy, error) {
	skip := cfg.OnError == OnErrorSkip
	comp, err := repo.CompressionPolicy(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("compression: %w", err)
	}
	comp.NoParentNeverCompress, comp.NoParentOnlyCompress = true, true
	comp.MinSize = max(comp.MinSize, 1) // an empty file has no data to compress
	if comp.MaxSize == 0 {
		comp.MaxSize = math.MaxInt64
	}
	return &policy.Policy{
		ErrorHandlingPolicy: policy.ErrorHandlingPolicy{
			IgnoreFileErrors:      newOptionalBool(skip),
			IgnoreDirectoryErrors: newOptionalBool(skip),
			IgnoreUnknownTypes:    newOptionalBool(true), // sockets and devices have no data to keep
		},
		CompressionPolicy: comp,
		UploadPolicy: policy.UploadPolicy{
			MaxParallelFileReads:    newOptionalInt(cfg.parallel()),
			ParallelUploadAboveSize: newOptionalInt64(cfg.parallelAbove()),
		},
	}, nil
}

// newUploader is Kopia's uploader of a backup, cfg.parallel() files or parts of a big file at
// once. Kopia's walking goroutine hands each file to an idle worker of a pool of
// ParallelUploads-1 and reads the file itself when none is idle; the goroutine that reads a big
// file hands its parts out the same way. With ParallelUploads at the parallelism, a lone big file
// (a database, a disk image) went to the pool's only worker at 2 (the default on two cores), found
// no other idle, and uploaded its 64 MiB parts one after the other while the walker waited: one
// stream (measured: --parallel 2 no faster than --parallel 1 on a 2 GiB file). One more worker
// gives a big file's parts cfg.parallel() streams; many files are read cfg.parallel() at once by
// the workers, and by the walker too when all of them are busy.
func newUploader(w kopiarepo.RepositoryWriter, cfg BackupConfig) *upload.Uploader {
	u := upload.NewUploader(w)
	u.ParallelUploads = cfg.parallel() + 1
	return u
}

func (c *BackupConfig) parallel() int {
	if c.Parallel > 0 {
		return c.Parallel
	}
	return DefaultParallel()
}

func (c *BackupConfig) parallelAbove() int64 {
	if c.ParallelAbove > 0 {
		return c.ParallelAbove
	}
	return DefaultParallelAbove
}

func newOptionalInt(v int) *policy.OptionalInt {
	o := policy.OptionalInt(v)
	return &o
}

func newOptionalInt64(v int64) *policy.OptionalInt64 {
	o := policy.OptionalInt64(v)
	return &o
}

// sourceEntry is what a backup uploads: the mounted directory, or a block device's image.
func sourceEntry(cfg BackupConfig) (fs.Entry, func(), error) {
	if cfg.Block {
		return blockSource(cfg.Source)
	}
	entry, err := localfs.NewEntry(cfg.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: %w", cfg.Source, err)
	}
	return entry, func() {}, nil
}

func fatalErrors(man *snapshot.Manifest) int {
	if man.RootEntry == nil || man.RootEntry.DirSummary == nil {
		return 0
	}
	return man.RootEntry.DirSummary.FatalErrorCount
}

func describeErrors(errs []FileError) string {
	var parts []string
	for i, e := range errs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more in the result", len(errs)-3))
			break
		}
		parts = append(parts, e.Path+": "+e.Message)
	}
	if len(parts) == 0 {
		return "(see the error events)"
	}
	return strings.Join(parts, "; ")
}

func newOptionalBool(b bool) *policy.OptionalBool {
	v := policy.OptionalBool(b)
	return &v
}

// Restore writes snapshot cfg.SnapshotID of r into cfg.Target: modes, owners (unless SkipOwners),
// times, symlinks and empty directories, files in parallel.
func Restore(ctx context.Context, r kopiarepo.Repository, cfg RestoreConfig, sink Sink) (*Result, error) {
	start := time.Now()
	res := &Result{Op: OpRestore, SnapshotID: cfg.SnapshotID}
	fail := func(err error) (*Result, error) {
		res.Error = oneLine(err.Error())
		res.DurationSeconds = time.Since(start).Seconds()
		return res, err
	}
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	if cfg.Block {
		if err := restoreBlockVolume(ctx, r, cfg, res); err != nil {
			return fail(err)
		}
		res.OK, res.DurationSeconds = true, time.Since(start).Seconds()
		return res, nil
	}
	root, stats, links, err := restoreRoot(ctx, r, cfg, res)
	if err != nil {
		return fail(err)
	}
	what := "snapshot " + cfg.SnapshotID
	if cfg.FromDir != "" {
		what = cfg.FromDir
	}
	if cfg.RequireEmpty && !cfg.DiffOnly {
		if err := requireEmpty(cfg.Target); err != nil {
			return fail(err)
		}
	}
	target := cfg.Target
	if cfg.SubPath != "" {
		if root, target, err = subTree(ctx, root, cfg.Target, cfg.SubPath); err != nil {
			return fail(fmt.Errorf("%s: %w", what, err))
		}
	}
	if cfg.DiffOnly { // what Sync would change: the same subtree
		d, err := DiffTree(ctx, root, target, !cfg.SkipOwners)
		if err != nil {
			return fail(fmt.Errorf("compare %s with %s: %w", what, target, err))
		}
		res.Diff, res.OK, res.DurationSeconds = d, true, time.Since(start).Seconds()
		return res, nil
	}
	if err := writeTree(ctx, r, root, target, cfg, stats, sink, res); err != nil {
		return fail(fmt.Errorf("restore %s into %s: %w", what, cfg.Target, err))
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if err := relink(ctx, target, links.Within(cfg.SubPath), cfg, res); err != nil {
		return fail(fmt.Errorf("restore %s into %s: %w", what, cfg.Target, err))
	}
	res.OK = true
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

// writeTree writes root into target with Kopia's restore (Sync: incremental, extras removed),
// counting into res and reporting progress to sink.
func writeTree(ctx context.Context, r kopiarepo.Repository, root fs.Entry, target string, cfg RestoreConfig, stats *snapshot.Stats, sink Sink, res *Result) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	out := &restore.FilesystemOutput{
		TargetPath:             target,
		OverwriteDirectories:   true,
		OverwriteFiles:         true,
		OverwriteSymlinks:      true,
		IgnorePermissionErrors: true,
		SkipOwners:             cfg.SkipOwners,
		WriteSparseFiles:       cfg.Sparse,
	}
	if err := out.Init(ctx); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if dir, ok := root.(fs.Directory); ok && cfg.Sync {
		if _, err := dropStale(ctx, dir, target, !cfg.SkipOwners); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	var output restore.Output = out
	if !cfg.Sync {
		output = smallFilesOutput(out)
	}
	sink(Event{Time: time.Now().UTC(), Event: EventStart, Op: OpRestore})
	var c counters
	if stats != nil && stats.TotalFileCount > 0 {
		c.totalFiles.Store(int64(stats.TotalFileCount))
		c.totalBytes.Store(stats.TotalFileSize)
	}
	stop := c.ticker(ctx, sink, OpRestore, nil)
	cancel := make(chan struct{})
	stopCancel := context.AfterFunc(ctx, func() { close(cancel) })
	st, err := restore.Entry(ctx, r, output, root, restore.Options{
		Parallel:               cfg.Parallel,
		IgnoreErrors:           cfg.OnError == OnErrorSkip,
		RestoreDirEntryAtDepth: math.MaxInt32, // without it Kopia writes .kopia-entry placeholders
		Incremental:            cfg.Sync,      // files whose size and time match are kept
		DeleteExtra:            cfg.Sync,      // entries the snapshot does not have are removed
		Cancel:                 cancel,
		ProgressCallback: func(_ context.Context, s restore.Stats) {
			c.files.Store(int64(s.RestoredFileCount))
			c.bytes.Store(s.RestoredTotalFileSize)
		},
	})
	stopCancel()
	c.files.Store(int64(st.RestoredFileCount))
	c.bytes.Store(st.RestoredTotalFileSize)
	stop()
	res.Files, res.Dirs, res.Bytes = int64(st.RestoredFileCount), int64(st.RestoredDirCount), st.RestoredTotalFileSize
	res.ErrorCount = int64(st.IgnoredErrorCount)
	res.SkippedFiles = int64(st.SkippedCount)
	return err
}

// validate checks a restore's settings and sets their defaults.
func (cfg *RestoreConfig) validate() error {
	if (cfg.SnapshotID == "") == (cfg.FromDir == "") || cfg.Target == "" {
		return errors.New("restore needs --snapshot and --target (or --from-dir instead of --snapshot)")
	}
	if cfg.OnError == "" {
		cfg.OnError = OnErrorFail
	}
	if cfg.OnError != OnErrorFail && cfg.OnError != OnErrorSkip {
		return fmt.Errorf("on-error %q: use fail or skip", cfg.OnError)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	return nil
}

// restoreRoot is what a restore copies: the snapshot's root (its tags named in res, its stats
// returned for progress, its hard link record taken out of it), or the FromDir tree (whose hard
// links are found by a scan).
func restoreRoot(ctx context.Context, r kopiarepo.Repository, cfg RestoreConfig, res *Result) (fs.Entry, *snapshot.Stats, *hardlinks.Record, error) {
	if cfg.FromDir != "" {
		root, err := localfs.NewEntry(cfg.FromDir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("restore from %s: %w", cfg.FromDir, err)
		}
		if _, ok := root.(fs.Directory); !ok {
			return nil, nil, nil, fmt.Errorf("restore from %s: not a directory", cfg.FromDir)
		}
		links, err := hardlinks.Scan(ctx, cfg.FromDir)
		if errors.Is(err, hardlinks.ErrTooMany) {
			res.Warnings = append(res.Warnings, "hard links are restored as separate files: "+err.Error())
			err = nil
		}
		return root, nil, links, err
	}
	man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(cfg.SnapshotID))
	if err != nil {
		if errors.Is(err, snapshot.ErrSnapshotNotFound) {
			return nil, nil, nil, fmt.Errorf("snapshot %s is not in this repository (list them with the plugin's describe command)", cfg.SnapshotID)
		}
		return nil, nil, nil, fmt.Errorf("load snapshot %s: %w", cfg.SnapshotID, err)
	}
	res.Namespace, res.PVC, res.Backup = man.Tags[repo.TagNamespace], man.Tags[repo.TagPVC], man.Tags[repo.TagBackup]
	root, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("snapshot %s root: %w", cfg.SnapshotID, err)
	}
	root, links, err := hardlinks.Load(ctx, root, man.Tags)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("snapshot %s: %w", cfg.SnapshotID, err)
	}
	return root, &man.Stats, links, nil
}

// requireEmpty fails when dir holds anything but lost+found (a new filesystem's).
func requireEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "lost+found" {
			names = append(names, e.Name())
		}
	}
	if len(names) > 0 {
		if len(names) > 3 {
			names = append(names[:3], "...")
		}
		return fmt.Errorf("the target volume is not empty (it holds %s): nothing was written; restore into a new or empty claim", strings.Join(names, ", "))
	}
	return nil
}

// subTree walks to sub (a clean path inside the snapshot; symlinks are not followed) and
// returns its entry and where it goes under target.
func subTree(ctx context.Context, root fs.Entry, target, sub string) (fs.Entry, string, error) {
	clean := path.Clean("/" + sub)
	e := root
	for _, name := range strings.Split(strings.Trim(clean, "/"), "/") {
		if name == "" {
			continue
		}
		dir, ok := e.(fs.Directory)
		if !ok {
			return nil, "", fmt.Errorf("path %s: %s is not a directory", clean, e.Name())
		}
		child, err := dir.Child(ctx, name)
		if err != nil {
			return nil, "", fmt.Errorf("path %s is not in the snapshot: %w", clean, err)
		}
		e = child
	}
	return e, filepath.Join(target, filepath.FromSlash(clean)), nil
}
