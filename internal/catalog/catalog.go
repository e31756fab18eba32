// Package catalog keeps the backups of a location: the bucket layout and the manifest
// (backup.json) that describes each backup without any secret in it.
//
//	backups/<name>/claim.json               who took the name and when, written first and only once
//	backups/<name>/backup.json              the manifest, written last and only once
//	backups/<name>/resources.tar.gz.age     the encrypted resources archive
//	backups/<name>/log.jsonl.gz             what happened, for `logs`
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// FormatVersion is the manifest format this build writes; it reads this one and older.
// 2: the archive and the volume repositories are encrypted with keys derived from the location
// key (internal/keyring), not with the password itself; 1 (development builds only) did that.
const FormatVersion = 2

// FormatLocationKey is the first format whose secrets derive from the location key. Older
// backups are listed and described, but not restored.
const FormatLocationKey = 2

// ErrOldFormat is returned (wrapped) for a backup this build lists but cannot open.
var ErrOldFormat = errors.New("backup format too old to open")

// File names inside a backup's directory.
const (
	ManifestFile  = "backup.json"
	ResourcesFile = "resources.tar.gz.age"
	LogFile       = "log.jsonl.gz"
	ClaimFile     = "claim.json"
	// KeyCopyFile is the copy of the wrapped location key kept with the backup (internal/keyring).
	KeyCopyFile = "location.age"
)

// Status of a backup.
type Status string

// Statuses. The last three are never written: Incomplete is a directory without backup.json
// (a run still writing, or one that was killed), Unreadable one whose backup.json cannot be read
// (not JSON, too large, or the read failed), NewerFormat one written by a newer kubectl-pvbackup.
const (
	Completed       Status = "Completed"
	PartiallyFailed Status = "PartiallyFailed"
	Failed          Status = "Failed"
	Incomplete      Status = "Incomplete"
	Unreadable      Status = "Unreadable"
	NewerFormat     Status = "NewerFormat"
)

// ErrNotFound is returned (wrapped) when a backup does not exist.
var ErrNotFound = errors.New("backup not found")

// ErrExists is returned (wrapped) when a backup name is taken.
var ErrExists = errors.New("backup already exists")

// ErrIncomplete is returned (wrapped) when a backup has files but no manifest.
var ErrIncomplete = errors.New("backup is incomplete")

// ErrUnreadable is returned (wrapped) when a backup's manifest or log cannot be read: not JSON,
// not gzip, or larger than any this tool writes.
var ErrUnreadable = errors.New("backup file is unreadable")

// ErrNewerFormat is returned (wrapped) when a manifest has a format this build does not read.
var ErrNewerFormat = errors.New("backup has a newer format")

// Size limits of the files read whole. A broken or hostile bucket must not make a command on
// the user's machine use memory it has no reason to: these are far above what a backup of a
// large cluster writes (a manifest holds a count per resource type and namespace, a log a line
// per resource type and per problem), and WriteManifest refuses to write what could not be read.
const (
	MaxManifestSize = 32 << 20
	MaxLogSize      = 32 << 20 // compressed
	MaxLogExpanded  = 64 << 20
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$`)

// ValidateName checks that a backup name is safe as a bucket path and as a label value.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") || len(name) > 63 {
		return fmt.Errorf("backup name %q is not valid: use 1-63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", name)
	}
	return nil
}

// Manifest is backup.json. It holds no secret values, so list and describe need no password.
type Manifest struct {
	FormatVersion  int        `json:"formatVersion"`
	Name           string     `json:"name"`
	ToolVersion    string     `json:"toolVersion"`
	Cluster        Cluster    `json:"cluster"`
	Selection      Selection  `json:"selection"`
	Status         Status     `json:"status"`
	Errors         []string   `json:"errors,omitempty"`
	Warnings       []Warning  `json:"warnings,omitempty"`
	StartTime      time.Time  `json:"startTime"`
	CompletionTime time.Time  `json:"completionTime"`
	Namespaces     []string   `json:"namespaces"`
	Resources      []Count    `json:"resources"`
	Items          int        `json:"items"`
	Archive        ArchiveRef `json:"archive"`
	// KeyScheme is how the archive and repository keys derive from the location key
	// (keyring.Scheme); "" in format 1.
	KeyScheme string   `json:"keyScheme,omitempty"`
	Volumes   []Volume `json:"volumes,omitempty"`
	// TTL is how long the backup is kept (`create --ttl`), as Go writes a duration ("720h0m0s");
	// ExpiresAt is StartTime + TTL. `prune` removes the backup once ExpiresAt has passed.
	TTL       string    `json:"ttl,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`

	// Labels are the user's (--labels), for `list -l`.
	Labels map[string]string `json:"labels,omitempty"`
	// Excluded lists the objects their exclusion label kept out (a Namespace: all it holds).
	Excluded []Excluded `json:"excluded,omitempty"`
}

// Expired reports whether the backup has a TTL that has run out at now.
func (m *Manifest) Expired(now time.Time) bool {
	return !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)
}

// Cluster describes where the backup was taken.
type Cluster struct {
	Server        string `json:"server,omitempty"`
	Context       string `json:"context,omitempty"`
	ServerVersion string `json:"serverVersion,omitempty"`
}

// Selection records what was asked for.
type Selection struct {
	IncludeNamespaces       []string `json:"includeNamespaces,omitempty"`
	ExcludeNamespaces       []string `json:"excludeNamespaces,omitempty"`
	IncludeResources        []string `json:"includeResources,omitempty"`
	ExcludeResources        []string `json:"excludeResources,omitempty"`
	LabelSelector           string   `json:"labelSelector,omitempty"`
	OrLabelSelectors        []string `json:"orLabelSelectors,omitempty"`
	IncludeClusterResources string   `json:"includeClusterResources,omitempty"`
	// Velero's new-style scoped filters, used instead of the resources lists and the cluster mode.
	IncludeClusterScopedResources   []string `json:"includeClusterScopedResources,omitempty"`
	ExcludeClusterScopedResources   []string `json:"excludeClusterScopedResources,omitempty"`
	IncludeNamespaceScopedResources []string `json:"includeNamespaceScopedResources,omitempty"`
	ExcludeNamespaceScopedResources []string `json:"excludeNamespaceScopedResources,omitempty"`
	// ResourcePolicies is the --resource-policies file given.
	ResourcePolicies string `json:"resourcePolicies,omitempty"`
}

// Excluded is an object left out because of its exclusion label.
type Excluded struct {
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Label     string `json:"label"` // velero.io/exclude-from-backup=true or pvbackup.io/exclude-from-backup=true
}

// Count is the number of objects of one resource in one namespace ("" for cluster-scoped).
type Count struct {
	Resource  string `json:"resource"` // group/version/resource, "v1/configmaps" for core
	Namespace string `json:"namespace,omitempty"`
	Count     int    `json:"count"`
}

// Warning is a problem with one item or resource that did not stop the backup.
type Warning struct {
	Resource  string `json:"resource,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Message   string `json:"message"`
}

// ArchiveRef describes the resources archive.
type ArchiveRef struct {
	File      string `json:"file"`
	Size      int64  `json:"size"`
	Encrypted string `json:"encryption"` // "age-scrypt"
}

// Catalog reads and writes backups in a location.
type Catalog struct {
	loc *store.Location
}

// New returns the catalog of loc.
func New(loc *store.Location) *Catalog { return &Catalog{loc: loc} }

// Location returns the location, for messages.
func (c *Catalog) Location() *store.Location { return c.loc }

func dir(name string) string { return "backups/" + name + "/" }

// Key returns the bucket key of a backup's file.
func Key(name, file string) string { return dir(name) + file }

// Exists reports whether anything is stored under the backup's name.
func (c *Catalog) Exists(ctx context.Context, name string) (bool, error) {
	var (
		found bool
		err   error
	)
	// Another run's temporary file (file:// only) is not a backup: it is skipped, and when it
	// vanishes while the directory is read the listing fails with NotFound, so it is read again.
	for range 5 {
		found, err = c.anyFile(ctx, name)
		if err == nil || gcerrors.Code(err) != gcerrors.NotFound {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("look up backup %q in %s: %w", name, c.loc, c.loc.Scrub(err))
	}
	return found, nil
}

// anyFile reports whether the backup's directory holds a file other than a temporary one.
func (c *Catalog) anyFile(ctx context.Context, name string) (bool, error) {
	it := c.loc.Bucket().List(&blob.ListOptions{Prefix: dir(name)})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !store.IsTemp(obj.Key) {
			return true, nil
		}
	}
}

// NewWriter opens a backup file for streaming upload. The object only appears when Close
// succeeds; cancelling ctx abandons it. It is never written over (the claim keeps other runs
// away; this is a second guard where the store checks it).
func (c *Catalog) NewWriter(ctx context.Context, name, file, contentType string) (io.WriteCloser, error) {
	return c.loc.NewStream(ctx, Key(name, file), &blob.WriterOptions{ContentType: contentType, IfNotExist: true}), nil
}

// NewReader opens a backup file.
func (c *Catalog) NewReader(ctx context.Context, name, file string) (*blob.Reader, error) {
	r, err := c.loc.Bucket().NewReader(ctx, Key(name, file), nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("backup %q in %s has no %s: %w", name, c.loc, file, ErrIncomplete)
		}
		return nil, fmt.Errorf("read %s of backup %q from %s: %w", file, name, c.loc, c.loc.Scrub(err))
	}
	return r, nil
}

// readBounded reads a backup's file whole, refusing one larger than max before reading it.
// A missing file keeps gocloud's NotFound code.
func (c *Catalog) readBounded(ctx context.Context, name, file string, max int64) ([]byte, error) {
	r, err := c.loc.Bucket().NewReader(ctx, Key(name, file), nil)
	if err != nil {
		return nil, fmt.Errorf("read %s of backup %q from %s: %w", file, name, c.loc, c.loc.Scrub(err))
	}
	defer r.Close()
	if r.Size() > max {
		return nil, tooLarge(name, file, r.Size(), max)
	}
	// Sized from the object: io.ReadAll's doubling would leave twice the file in garbage.
	buf := bytes.NewBuffer(make([]byte, 0, r.Size()+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(r, max+1))
	b := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read %s of backup %q from %s: %w", file, name, c.loc, c.loc.Scrub(err))
	}
	if int64(len(b)) > max {
		return nil, tooLarge(name, file, int64(len(b)), max)
	}
	return b, nil
}

func tooLarge(name, file string, size, max int64) error {
	return fmt.Errorf("backup %q: %s is %d bytes, more than the %d this tool writes or reads: the file is damaged or not one of ours (delete the backup if it is not yours to keep): %w", name, file, size, max, ErrUnreadable)
}

// WriteManifest writes backup.json; it is the last file of a backup, and written only once: a
// manifest already there is ErrExists, never overwritten.
func (c *Catalog) WriteManifest(ctx context.Context, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if len(b) >= MaxManifestSize {
		return fmt.Errorf("manifest of backup %q is %d bytes, more than the %d this tool reads back: %w", m.Name, len(b), MaxManifestSize, ErrUnreadable)
	}
	err = c.loc.WriteNew(ctx, Key(m.Name, ManifestFile), append(b, '\n'), "application/json")
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("backup %q in %s already has a %s, written by another run: this run's manifest was not written over it: %w", m.Name, c.loc, ManifestFile, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("write manifest of backup %q to %s: %w", m.Name, c.loc, err)
	}
	return nil
}

// Manifest reads a backup's manifest. A backup with files but no manifest is ErrIncomplete;
// no files at all is ErrNotFound; a newer format is refused with the version named.
func (c *Catalog) Manifest(ctx context.Context, name string) (*Manifest, error) {
	return c.readManifest(ctx, name, ParseManifest)
}

// readManifest reads a backup's manifest with parse (ParseManifest, or ParseSummary).
func (c *Catalog) readManifest(ctx context.Context, name string, parse func(string, []byte) (*Manifest, error)) (*Manifest, error) {
	b, err := c.readBounded(ctx, name, ManifestFile, MaxManifestSize)
	if err != nil {
		if gcerrors.Code(err) != gcerrors.NotFound {
			return nil, err
		}
		exists, xerr := c.Exists(ctx, name)
		if xerr != nil {
			return nil, xerr
		}
		if !exists {
			return nil, fmt.Errorf("backup %q not found in %s (see `kubectl pvbackup list`): %w", name, c.loc, ErrNotFound)
		}
		who := "it was interrupted or is still being written"
		if cl, err := c.ReadClaim(ctx, name); err == nil {
			who = "it is being written by " + cl.String() + ", or that run was interrupted"
		}
		return nil, fmt.Errorf("backup %q in %s has no %s: %s (once no run is writing it, delete it with `kubectl pvbackup delete %s`): %w", name, c.loc, ManifestFile, who, name, ErrIncomplete)
	}
	return parse(name, b)
}

// ParseManifest decodes backup.json and checks its format version. It decodes once (a manifest
// near the size cap takes a second or more to parse); only a manifest that does not decode is
// probed for its version, to tell a newer format from a damaged file.
func ParseManifest(name string, b []byte) (*Manifest, error) {
	var m Manifest
	if err := decode(name, b, &m, &m.FormatVersion); err != nil {
		return nil, err
	}
	return &m, nil
}

// decode unmarshals backup.json b into v, whose format version is at *version, and checks it.
func decode(name string, b []byte, v any, version *int) error {
	if len(b) > MaxManifestSize {
		return tooLarge(name, ManifestFile, int64(len(b)), MaxManifestSize)
	}
	if err := json.Unmarshal(b, v); err != nil {
		var probe struct {
			FormatVersion int `json:"formatVersion"`
		}
		if perr := json.Unmarshal(b, &probe); perr != nil {
			return fmt.Errorf("backup %q: %s is not valid JSON (%v): %w", name, ManifestFile, perr, ErrUnreadable)
		}
		if probe.FormatVersion <= FormatVersion {
			return fmt.Errorf("backup %q: %s (%v): %w", name, ManifestFile, err, ErrUnreadable)
		}
		*version = probe.FormatVersion
	}
	if *version > FormatVersion {
		return fmt.Errorf("backup %q has format version %d; this kubectl-pvbackup reads versions 1 to %d (upgrade the plugin): %w", name, *version, FormatVersion, ErrNewerFormat)
	}
	if *version < 1 {
		return fmt.Errorf("backup %q: %s has format version %d, which no kubectl-pvbackup writes: %w", name, ManifestFile, *version, ErrUnreadable)
	}
	return nil
}

// Entry is one backup as `list` shows it.
type Entry struct {
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Claim    *Claim    `json:"claim,omitempty"` // who started an Incomplete backup, when its claim says
	Size     int64     `json:"size"`            // bytes of all the backup's files
	Modified time.Time `json:"modified"`        // newest file, for incomplete backups
	Error    string    `json:"error,omitempty"` // why it is Unreadable, NewerFormat or Incomplete
}

// List returns every backup, sorted by name: without a manifest a backup is Incomplete; with one
// that cannot be read, Unreadable or NewerFormat, the reason in Error. It holds every manifest:
// Each streams them.
func (c *Catalog) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := c.Each(ctx, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// ListSummaries is List with each manifest read as a summary (ParseSummary): what retention
// and removal need, without the rest of each manifest.
func (c *Catalog) ListSummaries(ctx context.Context) ([]Entry, error) {
	var out []Entry
	err := c.EachSummary(ctx, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Each calls fn with every backup, sorted by name, as List describes them, reading one manifest
// at a time: what it holds does not grow with the number of backups (a manifest may be up to
// MaxManifestSize, and parsed it is several times that). fn's error stops it.
func (c *Catalog) Each(ctx context.Context, fn func(Entry) error) error {
	return c.each(ctx, ParseManifest, fn)
}

// EachSummary is Each with each manifest read as a summary (ParseSummary).
func (c *Catalog) EachSummary(ctx context.Context, fn func(Entry) error) error {
	return c.each(ctx, ParseSummary, fn)
}

func (c *Catalog) each(ctx context.Context, parse func(string, []byte) (*Manifest, error), fn func(Entry) error) error {
	stubs, err := c.stubs(ctx)
	if err != nil {
		return err
	}
	for i := range stubs {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := stubs[i]
		c.fillEntry(ctx, &e, parse)
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// stubs lists the backups without reading their files, sorted by name.
func (c *Catalog) stubs(ctx context.Context) ([]Entry, error) {
	byName := map[string]*Entry{}
	it := c.loc.Bucket().List(&blob.ListOptions{Prefix: "backups/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list backups in %s: %w", c.loc, c.loc.Scrub(err))
		}
		rest := strings.TrimPrefix(obj.Key, "backups/")
		name, file, ok := strings.Cut(rest, "/")
		if !ok || name == "" {
			continue
		}
		e := byName[name]
		if e == nil {
			e = &Entry{Name: name, Status: Incomplete}
			byName[name] = e
		}
		e.Size += obj.Size
		if obj.ModTime.After(e.Modified) {
			e.Modified = obj.ModTime
		}
		switch file {
		case ManifestFile:
			e.Status = "" // read below
		case ClaimFile:
			e.Claim = &Claim{} // read below
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// fillEntry reads what List found: the manifest, or for an Incomplete backup its claim.
func (c *Catalog) fillEntry(ctx context.Context, e *Entry, parse func(string, []byte) (*Manifest, error)) {
	if e.Status != "" {
		e.Error = "no " + ManifestFile + ": a run is still writing it, or was interrupted"
		if e.Claim != nil {
			e.Claim = nil
			if cl, err := c.ReadClaim(ctx, e.Name); err == nil {
				e.Claim = cl
				e.Error = "no " + ManifestFile + ": being written by " + cl.String() + ", or that run was interrupted"
			}
		}
		return
	}
	e.Claim = nil
	m, err := c.readManifest(ctx, e.Name, parse)
	switch {
	case err == nil:
		e.Manifest, e.Status = m, m.Status
		return
	case errors.Is(err, ErrNewerFormat):
		e.Status = NewerFormat
	case errors.Is(err, ErrIncomplete):
		e.Status = Incomplete // deleted since it was listed
	default:
		e.Status = Unreadable // damaged, or the read failed: not to be taken for an interrupted run
	}
	e.Error = err.Error()
}

// Delete removes every file of the backup. Deleting what is not there is ErrNotFound.
func (c *Catalog) Delete(ctx context.Context, name string) (int, error) {
	it := c.loc.Bucket().List(&blob.ListOptions{Prefix: dir(name)})
	var keys []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("list files of backup %q in %s: %w", name, c.loc, c.loc.Scrub(err))
		}
		keys = append(keys, obj.Key)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf("backup %q not found in %s: %w", name, c.loc, ErrNotFound)
	}
	// The manifest goes first, so an interrupted delete leaves an Incomplete backup, not a
	// Completed one with missing files; the claim goes last, so the name stays taken until
	// every other file is gone.
	rank := func(k string) int {
		switch {
		case strings.HasSuffix(k, "/"+ManifestFile):
			return 0
		case strings.HasSuffix(k, "/"+ClaimFile):
			return 2
		}
		return 1
	}
	sort.SliceStable(keys, func(i, j int) bool { return rank(keys[i]) < rank(keys[j]) })
	for _, k := range keys {
		if err := c.loc.Bucket().Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return 0, fmt.Errorf("delete %s from %s: %w", k, c.loc, c.loc.Scrub(err))
		}
	}
	return len(keys), nil
}

// Volume is what happened to one PVC's data.
type Volume struct {
	Namespace    string   `json:"namespace"`
	PVC          string   `json:"pvc"`
	Mode         string   `json:"mode"`   // snapshot-move, fs, snapshot or none
	Reason       string   `json:"reason"` // why this mode
	StorageClass string   `json:"storageClass,omitempty"`
	Driver       string   `json:"driver,omitempty"`
	Size         string   `json:"size,omitempty"`
	AccessModes  []string `json:"accessModes,omitempty"`
	// VolumeMode is the claim's volumeMode when it is Block (a raw device, stored as one file);
	// empty for filesystem volumes.
	VolumeMode string `json:"volumeMode,omitempty"`
	// VolumeGroup is the claim's volume group (namespace/label=value) when it is in one;
	// GroupSnapshot the VolumeGroupSnapshot that cut it, empty when it was cut alone (Reason and
	// Warnings say why), and GroupSnapshotAPIVersion the API version it was made with
	// (groupsnapshot.storage.k8s.io/v1 or v1beta2, found at run time).
	VolumeGroup             string `json:"volumeGroup,omitempty"`
	GroupSnapshot           string `json:"groupSnapshot,omitempty"`
	GroupSnapshotAPIVersion string `json:"groupSnapshotAPIVersion,omitempty"`
	SnapshotClass           string `json:"snapshotClass,omitempty"`
	VolumeSnapshot          string `json:"volumeSnapshot,omitempty"` // snapshot mode: the kept VolumeSnapshot
	SnapshotHandle          string `json:"snapshotHandle,omitempty"` // the storage system's snapshot ID
	KopiaSnapshot           string `json:"kopiaSnapshot,omitempty"`
	KopiaParent             string `json:"kopiaParent,omitempty"`
	// Compression is what the mover was told (create --compression, or the PVC's annotation
	// pvbackup.io/compression): none, auto or a Kopia compressor. Empty in older backups: none.
	Compression   string `json:"compression,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	UploadedBytes int64  `json:"uploadedBytes,omitempty"`
	Files         int64  `json:"files,omitempty"`
	// HardLinks are the files that are hard links of another path of the volume, recorded so a
	// restore links them again.
	HardLinks    int64   `json:"hardLinks,omitempty"`
	Seconds      float64 `json:"durationSeconds,omitempty"`
	MoverSeconds float64 `json:"moverSeconds,omitempty"` // of which the mover's own upload
	// MoverOpenSeconds is the part of MoverSeconds spent opening the namespace's repository.
	MoverOpenSeconds float64 `json:"moverOpenSeconds,omitempty"`
	// MoverDebug (create --mover-debug): the mover's storage calls with their HTTP timings.
	MoverDebug []string `json:"moverDebug,omitempty"`
	// MoverNode is the node the mover ran on (docs/volumes.md, "Where each mover runs").
	MoverNode string   `json:"moverNode,omitempty"`
	Status    string   `json:"status"` // Completed, Failed or Skipped
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Hooks     []string `json:"hooks,omitempty"` // what the pre/post hooks around it did
}

// Volume statuses.
const (
	VolumeCompleted = "Completed"
	VolumeFailed    = "Failed"
	VolumeSkipped   = "Skipped"
)

// VolumeModeBlock is Volume.VolumeMode of a raw block volume.
const VolumeModeBlock = "Block"

// IsBlock says whether the volume is a raw block volume.
func (v Volume) IsBlock() bool { return v.VolumeMode == VolumeModeBlock }
