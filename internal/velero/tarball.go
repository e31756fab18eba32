package velero

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Directories of Velero's resources tarball (Velero's pkg/apis/velero/v1/constants.go).
const (
	resourcesDir      = "resources"
	clusterDir        = "cluster"
	namespacesDir     = "namespaces"
	preferredSuffix   = "-preferredversion"
	metadataVersion   = "metadata/version"
	maxPathLength     = 4096
	maxMetadataLength = 64
)

// Object is one object of the tarball.
type Object struct {
	GroupResource schema.GroupResource
	// Version is the API version of the copy read: the <version>-preferredversion directory's,
	// and for the unversioned copy of an older backup its apiVersion's.
	Version   string
	Namespace string // "" for cluster-scoped objects
	Name      string
	Data      []byte // the object's JSON as Velero wrote it
}

// Resources is the content of a resources tarball.
type Resources struct {
	// FormatVersion is metadata/version ("1.1.0"); "" when the tarball has none.
	FormatVersion string
	Objects       []Object // sorted by group, resource, namespace, name
	// Ignored counts the entries not read: copies of other API versions, and entries outside
	// resources/ that Velero does not write.
	Ignored int
}

// entryPath is where an object's entry sits: resources/<group-resource>/[<version>/]{cluster|namespaces/<ns>}/<name>.json.
type entryPath struct {
	gr        schema.GroupResource
	version   string // the version directory, "" for the unversioned copy
	namespace string
	name      string
}

// checkEntryName refuses what could escape a directory or hide in a terminal if the entry were
// ever written to disk or printed: absolute paths, "..", empty or "." elements, backslashes,
// control characters, invalid UTF-8, and absurd lengths.
func checkEntryName(p string) error {
	switch {
	case p == "" || len(p) > maxPathLength:
		return fmt.Errorf("tarball entry of %d bytes: not a path Velero writes", len(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("tarball entry %q is not UTF-8", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("tarball entry %q has a control character", p)
	case strings.HasPrefix(p, "/") || strings.Contains(p, `\`):
		return fmt.Errorf("tarball entry %q is not a relative path", p)
	}
	for _, s := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("tarball entry %q escapes its directory", p)
		}
	}
	return nil
}

// parseEntryPath reads an object's entry path; ok is false for entries outside resources/.
func parseEntryPath(p string) (entryPath, bool, error) {
	parts := strings.Split(p, "/")
	if parts[0] != resourcesDir {
		return entryPath{}, false, nil
	}
	bad := fmt.Errorf("tarball entry %q is not resources/<resource>[.<group>]/[<version>/]{cluster|namespaces/<namespace>}/<name>.json: %w", p, ErrUnreadable)
	if len(parts) < 4 || !strings.HasSuffix(parts[len(parts)-1], ".json") {
		return entryPath{}, false, bad
	}
	var e entryPath
	res, group, _ := strings.Cut(parts[1], ".")
	e.gr = schema.GroupResource{Group: group, Resource: res}
	rest := parts[2:]
	if rest[0] != clusterDir && rest[0] != namespacesDir {
		e.version, rest = rest[0], rest[1:]
	}
	switch {
	case len(rest) == 2 && rest[0] == clusterDir:
		e.name = rest[1]
	case len(rest) == 3 && rest[0] == namespacesDir:
		e.namespace, e.name = rest[1], rest[2]
	default:
		return entryPath{}, false, bad
	}
	e.name = strings.TrimSuffix(e.name, ".json")
	if e.name == "" || res == "" {
		return entryPath{}, false, bad
	}
	return e, true, nil
}

// objectKey identifies one object across its copies.
type objectKey struct {
	gr              schema.GroupResource
	namespace, name string
}

// ReadResources reads the resources tarball of backup name, bounded by l.Limits. Of an object's
// copies, the <version>-preferredversion one is read when present, else the unversioned one;
// never both, and copies of other versions are ignored.
func (l *Location) ReadResources(ctx context.Context, name string) (*Resources, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	key := fileKey(name, suffixTarball)
	r, err := l.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, l.readError(key, err)
	}
	defer r.Close() //nolint:errcheck // read-only
	if r.Size() > l.Limits.TarballBytes {
		return nil, fmt.Errorf("%s in %s is %d bytes, more than the %d read: %w", key, l.display, r.Size(), l.Limits.TarballBytes, ErrUnreadable)
	}
	res, err := readTarball(io.LimitReader(r, l.Limits.TarballBytes+1), l.Limits)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s in %s: %w", key, l.display, l.scrub(err))
	}
	return res, nil
}

// readTarball reads a resources tarball (tar.gz) from r.
func readTarball(r io.Reader, lim Limits) (*Resources, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", ErrUnreadable)
	}
	t := &tarballReader{tr: tar.NewReader(gz), lim: lim, plain: map[objectKey]Object{}, preferred: map[objectKey]Object{}, seenPlain: map[objectKey]bool{}}
	if err := t.readAll(); err != nil {
		return nil, err
	}
	return t.result(), nil
}

type tarballReader struct {
	tr               *tar.Reader
	lim              Limits
	entries          int
	total            int64
	res              Resources
	plain, preferred map[objectKey]Object
	seenPlain        map[objectKey]bool // unversioned copies dropped for a preferred one
}

func (t *tarballReader) readAll() error {
	for {
		hdr, err := t.tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("damaged tarball: %v: %w", err, ErrUnreadable)
		}
		if t.entries++; t.entries > t.lim.Entries {
			return fmt.Errorf("more than %d entries: %w", t.lim.Entries, ErrUnreadable)
		}
		if err := t.entry(hdr); err != nil {
			return err
		}
	}
}

// entry reads one tar entry.
func (t *tarballReader) entry(hdr *tar.Header) error {
	if err := checkEntryName(hdr.Name); err != nil {
		return fmt.Errorf("%w: %w", err, ErrUnreadable)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return nil
	case tar.TypeReg:
	default:
		return fmt.Errorf("tarball entry %q is not a regular file (type %q): Velero writes none: %w", hdr.Name, hdr.Typeflag, ErrUnreadable)
	}
	if hdr.Size < 0 || hdr.Size > t.lim.EntryBytes {
		return fmt.Errorf("tarball entry %q is %d bytes, more than any object can be (%d): %w", hdr.Name, hdr.Size, t.lim.EntryBytes, ErrUnreadable)
	}
	if t.total += hdr.Size; t.total > t.lim.ResourcesBytes {
		return fmt.Errorf("the tarball holds more than %d bytes: %w", t.lim.ResourcesBytes, ErrUnreadable)
	}
	if hdr.Name == metadataVersion {
		return t.version(hdr)
	}
	ep, ok, err := parseEntryPath(hdr.Name)
	if err != nil {
		return err
	}
	if !ok || (ep.version != "" && !strings.HasSuffix(ep.version, preferredSuffix)) {
		t.res.Ignored++
		return nil
	}
	if ep.version == "" && t.seenPlain[objectKey{ep.gr, ep.namespace, ep.name}] {
		return fmt.Errorf("tarball entry %q appears twice: %w", hdr.Name, ErrUnreadable)
	}
	if !t.keep(ep) {
		return nil
	}
	data, err := io.ReadAll(t.tr)
	if err != nil {
		return fmt.Errorf("tarball entry %q: %v: %w", hdr.Name, err, ErrUnreadable)
	}
	o := Object{GroupResource: ep.gr, Namespace: ep.namespace, Name: ep.name, Version: strings.TrimSuffix(ep.version, preferredSuffix), Data: data}
	if err := checkObject(hdr.Name, &o); err != nil {
		return err
	}
	k := objectKey{ep.gr, ep.namespace, ep.name}
	into := t.plain
	if ep.version != "" {
		into = t.preferred
	}
	if _, dup := into[k]; dup {
		return fmt.Errorf("tarball entry %q appears twice: %w", hdr.Name, ErrUnreadable)
	}
	into[k] = o
	return nil
}

// keep reports whether an object's copy is still wanted, dropping an unversioned copy that the
// preferred-version one replaces (Velero writes the two one after the other).
func (t *tarballReader) keep(ep entryPath) bool {
	k := objectKey{ep.gr, ep.namespace, ep.name}
	if ep.version == "" {
		if _, ok := t.preferred[k]; ok {
			t.res.Ignored++
			t.seenPlain[k] = true
			return false
		}
		return true
	}
	if _, ok := t.plain[k]; ok {
		delete(t.plain, k)
		t.res.Ignored++
		t.seenPlain[k] = true
	}
	return true
}

func (t *tarballReader) version(hdr *tar.Header) error {
	if hdr.Size > maxMetadataLength {
		return fmt.Errorf("%s is %d bytes: %w", metadataVersion, hdr.Size, ErrUnreadable)
	}
	b, err := io.ReadAll(t.tr)
	if err != nil {
		return fmt.Errorf("%s: %v: %w", metadataVersion, err, ErrUnreadable)
	}
	v := strings.TrimSpace(string(b))
	if strings.IndexFunc(v, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' }) >= 0 {
		return fmt.Errorf("%s says %q, not a version: %w", metadataVersion, v, ErrUnreadable)
	}
	t.res.FormatVersion = v
	return nil
}

// result merges the copies: the preferred-version copy wins, the unversioned one stands in.
func (t *tarballReader) result() *Resources {
	objs := make([]Object, 0, len(t.plain)+len(t.preferred))
	for _, o := range t.preferred {
		objs = append(objs, o)
	}
	for _, o := range t.plain {
		objs = append(objs, o)
	}
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.GroupResource != b.GroupResource {
			if a.GroupResource.Group != b.GroupResource.Group {
				return a.GroupResource.Group < b.GroupResource.Group
			}
			return a.GroupResource.Resource < b.GroupResource.Resource
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	t.res.Objects = objs
	return &t.res
}

// checkObject checks that an entry's object is the one its path names (group, version, namespace,
// name) and fills the version of an unversioned copy from its apiVersion. A path and an object
// that disagree were not written by Velero: the engine must never apply an object under a name or
// a type its path does not say.
func checkObject(entry string, o *Object) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(o.Data, &head); err != nil {
		return fmt.Errorf("tarball entry %q is not a JSON object: %v: %w", entry, err, ErrUnreadable)
	}
	group, version, ok := strings.Cut(head.APIVersion, "/")
	if !ok {
		group, version = "", head.APIVersion
	}
	switch {
	case head.Kind == "" || version == "":
		return fmt.Errorf("tarball entry %q has no kind or apiVersion: %w", entry, ErrUnreadable)
	case group != o.GroupResource.Group:
		return fmt.Errorf("tarball entry %q holds an object of group %q, not %q: %w", entry, group, o.GroupResource.Group, ErrUnreadable)
	case o.Version != "" && version != o.Version:
		return fmt.Errorf("tarball entry %q holds an object of version %q, not %q: %w", entry, version, o.Version, ErrUnreadable)
	case head.Metadata.Name != o.Name || head.Metadata.Namespace != o.Namespace:
		return fmt.Errorf("tarball entry %q holds object %q in namespace %q: %w", entry, head.Metadata.Name, head.Metadata.Namespace, ErrUnreadable)
	}
	o.Version = version
	return nil
}
