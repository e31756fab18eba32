// Package archive writes and reads the resources archive: a tar.gz of one JSON file per object,
// encrypted with age under a passphrase (the repository password), so that the bucket never
// holds a Secret in clear.
//
// Entry paths are <group>/<version>/<resource>/<namespace>/<name>.json, with "core" for the
// core group and "_cluster" for cluster-scoped objects.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ClusterScope is the namespace directory of cluster-scoped objects.
const ClusterScope = "_cluster"

// ErrWrongPassword is returned when the archive cannot be decrypted with the password given.
var ErrWrongPassword = errors.New("wrong repository password")

// WorkFactor is the scrypt cost (log2 N) of new archives: 2^10 (1 MiB, a few milliseconds).
// The passphrase is never a person's password but a random 256-bit key derived from the location
// key (keyring.ArchiveKey), which no key derivation makes harder to guess; the 2^16 used before
// cost every create and restore ~0.3 s for nothing. Archives written at 2^16 still open.
const WorkFactor = 10

// MaxWorkFactor is the dearest scrypt cost NewReader accepts. The cost is read from the
// archive's header, which whoever can write to the bucket controls: age's own limit (2^22,
// about 4 GiB and half a minute) would let a tampered archive hold `restore` for that long.
// 18 is age's default (256 MiB, about a second), room above the 16 earlier builds wrote.
const MaxWorkFactor = 18

// maxEntry bounds one object's JSON: the apiserver's own limit on a request is 3 MiB.
const maxEntry = 64 << 20

// Key identifies one object in the archive.
type Key struct {
	GVR       schema.GroupVersionResource
	Namespace string // "" for cluster-scoped
	Name      string
}

// Path returns the entry path of k.
func (k Key) Path() string {
	g := k.GVR.Group
	if g == "" {
		g = "core"
	}
	ns := k.Namespace
	if ns == "" {
		ns = ClusterScope
	}
	return path.Join(g, k.GVR.Version, k.GVR.Resource, ns, k.Name+".json")
}

// ParsePath is the inverse of Path. It refuses paths that could escape a directory when
// extracted, or that do not have the expected shape.
func ParsePath(p string) (Key, error) {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p {
		return Key{}, fmt.Errorf("archive entry %q is not a clean relative path", p)
	}
	parts := strings.Split(p, "/")
	if len(parts) != 5 || !strings.HasSuffix(parts[4], ".json") {
		return Key{}, fmt.Errorf("archive entry %q is not <group>/<version>/<resource>/<namespace>/<name>.json", p)
	}
	for _, s := range parts {
		if s == "" || s == "." || s == ".." {
			return Key{}, fmt.Errorf("archive entry %q escapes its directory", p)
		}
	}
	k := Key{GVR: schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}, Namespace: parts[3], Name: strings.TrimSuffix(parts[4], ".json")}
	if k.GVR.Group == "core" {
		k.GVR.Group = ""
	}
	if k.Namespace == ClusterScope {
		k.Namespace = ""
	}
	if k.Name == "" || k.Name == "." || k.Name == ".." {
		return Key{}, fmt.Errorf("archive entry %q escapes its directory", p)
	}
	return k, nil
}

// Writer streams objects into an encrypted archive.
type Writer struct {
	enc   io.WriteCloser
	gz    *gzip.Writer
	tw    *tar.Writer
	mtime time.Time
	n     int
}

// NewWriter starts an archive on w, encrypted with password. Close must be called to flush it;
// closing does not close w.
func NewWriter(w io.Writer, password string) (*Writer, error) {
	if password == "" {
		return nil, errors.New("archive: empty password")
	}
	r, err := age.NewScryptRecipient(password)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	r.SetWorkFactor(WorkFactor)
	enc, err := age.Encrypt(w, r)
	if err != nil {
		return nil, fmt.Errorf("archive: start encryption: %w", err)
	}
	gz, _ := gzip.NewWriterLevel(enc, gzip.BestSpeed)
	return &Writer{enc: enc, gz: gz, tw: tar.NewWriter(gz), mtime: time.Now().UTC().Truncate(time.Second)}, nil
}

// Add writes one object's JSON.
func (w *Writer) Add(k Key, data []byte) error {
	hdr := &tar.Header{Name: k.Path(), Mode: 0o600, Size: int64(len(data)), ModTime: w.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", k.Path(), err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("archive %s: %w", k.Path(), err)
	}
	w.n++
	return nil
}

// Count returns how many objects were added.
func (w *Writer) Count() int { return w.n }

// Close finishes the tar, gzip and encryption streams.
func (w *Writer) Close() error {
	if err := w.tw.Close(); err != nil {
		return err
	}
	if err := w.gz.Close(); err != nil {
		return err
	}
	return w.enc.Close()
}

// Reader reads objects from an encrypted archive.
type Reader struct {
	tr *tar.Reader
}

// NewReader starts decrypting r with password. A wrong password yields ErrWrongPassword at once.
func NewReader(r io.Reader, password string) (*Reader, error) {
	id, err := age.NewScryptIdentity(password)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	id.SetMaxWorkFactor(MaxWorkFactor)
	dec, err := age.Decrypt(r, id)
	if err != nil {
		if strings.Contains(err.Error(), "work factor too large") {
			return nil, fmt.Errorf("archive: its header asks for a dearer key derivation than kubectl-pvbackup writes (scrypt work factor above %d): the archive was not written by this tool or was tampered with", MaxWorkFactor)
		}
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("archive: decrypt: %w", err)
	}
	return newPlainReader(dec)
}

// newPlainReader reads the decrypted archive: a tar.gz.
func newPlainReader(r io.Reader) (*Reader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("archive: not a gzip stream inside the encryption: %w", err)
	}
	return &Reader{tr: tar.NewReader(gz)}, nil
}

// Next returns the next object, or io.EOF at the end.
func (r *Reader) Next() (Key, []byte, error) {
	for {
		hdr, err := r.tr.Next()
		if err != nil {
			if err == io.EOF {
				return Key{}, nil, io.EOF
			}
			return Key{}, nil, fmt.Errorf("archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return Key{}, nil, fmt.Errorf("archive entry %q is not a regular file", hdr.Name)
		}
		k, err := ParsePath(hdr.Name)
		if err != nil {
			return Key{}, nil, err
		}
		if hdr.Size > maxEntry {
			return Key{}, nil, fmt.Errorf("archive entry %q is %d bytes, more than any object can be", hdr.Name, hdr.Size)
		}
		data, err := io.ReadAll(r.tr)
		if err != nil {
			return Key{}, nil, fmt.Errorf("archive %s: %w", hdr.Name, err)
		}
		return k, data, nil
	}
}
