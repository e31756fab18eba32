// Package catalog keeps the backups of a location: the bucket layout and the manifest
// (backup.json) that describes each backup without any secret in it.
//
//	backups/<name>/backup.json              the manifest, written last
//	backups/<name>/resources.tar.gz.age     the encrypted resources archive
//	backups/<name>/log.jsonl.gz             what happened, for `logs`
package catalog

import (
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
)

// Status of a backup.
type Status string

// Statuses. Incomplete is never written: it is what a directory without backup.json is.
const (
	Completed       Status = "Completed"
	PartiallyFailed Status = "PartiallyFailed"
	Failed          Status = "Failed"
	Incomplete      Status = "Incomplete"
)

// ErrNotFound is returned (wrapped) when a backup does not exist.
var ErrNotFound = errors.New("backup not found")

// ErrExists is returned (wrapped) when a backup name is taken.
var ErrExists = errors.New("backup already exists")

// ErrIncomplete is returned (wrapped) when a backup has files but no manifest.
var ErrIncomplete = errors.New("backup is incomplete")

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
	it := c.loc.Bucket().List(&blob.ListOptions{Prefix: dir(name)})
	_, err := it.Next(ctx)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up backup %q in %s: %w", name, c.loc, err)
	}
	return true, nil
}

// NewWriter opens a backup file for streaming upload. The object only appears when Close
// succeeds; cancelling ctx abandons it.
func (c *Catalog) NewWriter(ctx context.Context, name, file, contentType string) (*blob.Writer, error) {
	w, err := c.loc.Bucket().NewWriter(ctx, Key(name, file), &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return nil, fmt.Errorf("write %s of backup %q to %s: %w", file, name, c.loc, err)
	}
	return w, nil
}

// NewReader opens a backup file.
func (c *Catalog) NewReader(ctx context.Context, name, file string) (*blob.Reader, error) {
	r, err := c.loc.Bucket().NewReader(ctx, Key(name, file), nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("backup %q in %s has no %s: %w", name, c.loc, file, ErrIncomplete)
		}
		return nil, fmt.Errorf("read %s of backup %q from %s: %w", file, name, c.loc, err)
	}
	return r, nil
}

// WriteManifest writes backup.json; it is the last file of a backup.
func (c *Catalog) WriteManifest(ctx context.Context, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := c.loc.Bucket().WriteAll(ctx, Key(m.Name, ManifestFile), append(b, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write manifest of backup %q to %s: %w", m.Name, c.loc, err)
	}
	return nil
}

// Manifest reads a backup's manifest. A backup with files but no manifest is ErrIncomplete;
// no files at all is ErrNotFound; a newer format is refused with the version named.
func (c *Catalog) Manifest(ctx context.Context, name string) (*Manifest, error) {
	b, err := c.loc.Bucket().ReadAll(ctx, Key(name, ManifestFile))
	if err != nil {
		if gcerrors.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("read backup %q from %s: %w", name, c.loc, err)
		}
		exists, xerr := c.Exists(ctx, name)
		if xerr != nil {
			return nil, xerr
		}
		if exists {
			return nil, fmt.Errorf("backup %q in %s has no %s: it was interrupted or is still being written (delete it with `kubectl pvbackup delete %s`): %w", name, c.loc, ManifestFile, name, ErrIncomplete)
		}
		return nil, fmt.Errorf("backup %q not found in %s (see `kubectl pvbackup list`): %w", name, c.loc, ErrNotFound)
	}
	return ParseManifest(name, b)
}

// ParseManifest decodes backup.json and checks its format version.
func ParseManifest(name string, b []byte) (*Manifest, error) {
	var probe struct {
		FormatVersion int `json:"formatVersion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("backup %q: %s is not valid JSON: %w", name, ManifestFile, err)
	}
	if probe.FormatVersion < 1 || probe.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("backup %q has format version %d; this kubectl-pvbackup reads versions 1 to %d (upgrade the plugin)", name, probe.FormatVersion, FormatVersion)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("backup %q: %s: %w", name, ManifestFile, err)
	}
	return &m, nil
}

// Entry is one backup as `list` shows it.
type Entry struct {
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Size     int64     `json:"size"`     // bytes of all the backup's files
	Modified time.Time `json:"modified"` // newest file, for incomplete backups
	Error    string    `json:"error,omitempty"`
}

// List returns every backup, sorted by name; backups without a manifest are Incomplete.
func (c *Catalog) List(ctx context.Context) ([]Entry, error) {
	byName := map[string]*Entry{}
	it := c.loc.Bucket().List(&blob.ListOptions{Prefix: "backups/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list backups in %s: %w", c.loc, err)
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
		if file == ManifestFile {
			e.Status = "" // read below
		}
	}
	var out []Entry
	for _, e := range byName {
		if e.Status == "" {
			m, err := c.Manifest(ctx, e.Name)
			if err != nil {
				e.Status, e.Error = Incomplete, err.Error()
			} else {
				e.Manifest, e.Status = m, m.Status
			}
		}
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
			return 0, fmt.Errorf("list files of backup %q in %s: %w", name, c.loc, err)
		}
		keys = append(keys, obj.Key)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf("backup %q not found in %s: %w", name, c.loc, ErrNotFound)
	}
	// The manifest goes first, so an interrupted delete leaves an Incomplete backup, not a
	// Completed one with missing files.
	sort.SliceStable(keys, func(i, j int) bool { return strings.HasSuffix(keys[i], "/"+ManifestFile) })
	for _, k := range keys {
		if err := c.loc.Bucket().Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return 0, fmt.Errorf("delete %s from %s: %w", k, c.loc, err)
		}
	}
	return len(keys), nil
}

// Volume is what happened to one PVC's data.
type Volume struct {
	Namespace      string   `json:"namespace"`
	PVC            string   `json:"pvc"`
	Mode           string   `json:"mode"`   // snapshot-move, fs, snapshot or none
	Reason         string   `json:"reason"` // why this mode
	StorageClass   string   `json:"storageClass,omitempty"`
	Driver         string   `json:"driver,omitempty"`
	Size           string   `json:"size,omitempty"`
	AccessModes    []string `json:"accessModes,omitempty"`
	SnapshotClass  string   `json:"snapshotClass,omitempty"`
	VolumeSnapshot string   `json:"volumeSnapshot,omitempty"` // snapshot mode: the kept VolumeSnapshot
	SnapshotHandle string   `json:"snapshotHandle,omitempty"` // the storage system's snapshot ID
	KopiaSnapshot  string   `json:"kopiaSnapshot,omitempty"`
	KopiaParent    string   `json:"kopiaParent,omitempty"`
	Bytes          int64    `json:"bytes,omitempty"`
	UploadedBytes  int64    `json:"uploadedBytes,omitempty"`
	Files          int64    `json:"files,omitempty"`
	Seconds        float64  `json:"durationSeconds,omitempty"`
	MoverSeconds   float64  `json:"moverSeconds,omitempty"` // of which the mover's own upload
	Status         string   `json:"status"`                 // Completed, Failed or Skipped
	Error          string   `json:"error,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
	Hooks          []string `json:"hooks,omitempty"` // what the pre/post hooks around it did
}

// Volume statuses.
const (
	VolumeCompleted = "Completed"
	VolumeFailed    = "Failed"
	VolumeSkipped   = "Skipped"
)
