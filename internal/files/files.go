// Package files reads the files of a backup's volumes on the user's machine: list them, print
// one, copy trees to a local directory. It needs the bucket and the password only, no cluster:
// it works the same after the cluster is gone.
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// Manifests reads backup manifests (catalog.Catalog).
type Manifests interface {
	Manifest(ctx context.Context, name string) (*catalog.Manifest, error)
}

// Repositories opens a namespace's repository for reading (repo.Service): ls, cat and cp write
// nothing to the bucket, and the storage layer refuses it if anything tried.
type Repositories interface {
	OpenReadOnly(ctx context.Context, namespace string) (*repo.Repository, func(), error)
}

// Deps are the engine's connections: the catalog and the repositories.
type Deps struct {
	Manifests Manifests
	Repos     Repositories
}

// Ref names a path inside a volume of a backup: NAMESPACE/PVC[:/path].
type Ref struct {
	Namespace, PVC string
	// Path is clean and absolute ("/" is the volume's root).
	Path string
}

func (r Ref) String() string { return r.Namespace + "/" + r.PVC + ":" + r.Path }

// ParseRef reads NAMESPACE/PVC[:/path].
func ParseRef(s string) (Ref, error) {
	vol, p, _ := strings.Cut(s, ":")
	ns, pvc, ok := strings.Cut(vol, "/")
	if !ok || ns == "" || pvc == "" || strings.Contains(pvc, "/") {
		return Ref{}, fmt.Errorf("%q: name a volume as NAMESPACE/PVC[:/path/in/volume]", s)
	}
	return Ref{Namespace: ns, PVC: pvc, Path: path.Clean("/" + p)}, nil
}

// ErrNoData is wrapped when a volume of the backup has no files in the bucket.
var ErrNoData = errors.New("no file data in the backup location")

// Volumes are the volumes of a backup as its manifest records them, ordered by namespace and PVC.
func Volumes(ctx context.Context, d Deps, backup string) ([]catalog.Volume, error) {
	m, err := d.Manifests.Manifest(ctx, backup)
	if err != nil {
		return nil, err
	}
	vols := append([]catalog.Volume(nil), m.Volumes...)
	sort.SliceStable(vols, func(i, j int) bool {
		if vols[i].Namespace != vols[j].Namespace {
			return vols[i].Namespace < vols[j].Namespace
		}
		return vols[i].PVC < vols[j].PVC
	})
	return vols, nil
}

// volume finds ref's volume in the backup and the Kopia snapshot that holds its files.
func volume(ctx context.Context, d Deps, backup string, ref Ref) (catalog.Volume, error) {
	vols, err := Volumes(ctx, d, backup)
	if err != nil {
		return catalog.Volume{}, err
	}
	var names []string
	for _, v := range vols {
		if v.Namespace != ref.Namespace || v.PVC != ref.PVC {
			names = append(names, v.Namespace+"/"+v.PVC)
			continue
		}
		if v.KopiaSnapshot == "" {
			why := "it was " + strings.ToLower(orText(v.Status, "not backed up"))
			if v.VolumeSnapshot != "" {
				why = "snapshot mode kept it as VolumeSnapshot " + v.VolumeSnapshot + " in the cluster"
			}
			return v, fmt.Errorf("volume %s/%s of backup %q has %w: %s", v.Namespace, v.PVC, backup, ErrNoData, why)
		}
		return v, nil
	}
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return catalog.Volume{}, fmt.Errorf("backup %q has no volume %s/%s (its volumes: %s; see `kubectl pvbackup ls %s`)", backup, ref.Namespace, ref.PVC, list, backup)
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// source is ref's entry in an open repository.
type source struct {
	vol   catalog.Volume
	rep   kopiarepo.Repository
	entry fs.Entry
	close func()
	// contents reads its objects within the limits of object.go (nil only for a repository that
	// is not a Kopia direct repository, which repo.Service never returns).
	contents *contents
}

// open opens ref's volume and walks to ref.Path. Symlinks on the way are not followed: their
// targets are paths of the machine the volume was mounted on, not of the snapshot.
func open(ctx context.Context, d Deps, backup string, ref Ref) (*source, error) {
	v, err := volume(ctx, d, backup, ref)
	if err != nil {
		return nil, err
	}
	rep, closeFn, err := d.Repos.OpenReadOnly(ctx, ref.Namespace)
	if err != nil {
		return nil, err
	}
	s := &source{vol: v, rep: rep, close: closeFn, contents: newContents(rep)}
	if s.entry, err = walk(ctx, rep, s.contents, v.KopiaSnapshot, ref); err != nil {
		closeFn()
		return nil, err
	}
	return s, nil
}

// walk finds ref in snapshot id. Directories and symlinks are read through the bounded walk
// (repofs.go).
func walk(ctx context.Context, rep kopiarepo.Repository, c *contents, id string, ref Ref) (fs.Entry, error) {
	man, err := snapshot.LoadSnapshot(ctx, rep, manifest.ID(id))
	if err != nil {
		return nil, fmt.Errorf("volume %s/%s: load Kopia snapshot %s: %w", ref.Namespace, ref.PVC, id, err)
	}
	e, err := snapshotfs.SnapshotRoot(bounded(rep, c), man)
	if err != nil {
		return nil, fmt.Errorf("volume %s/%s: snapshot %s: %w", ref.Namespace, ref.PVC, id, err)
	}
	walked := ""
	for _, name := range strings.Split(strings.Trim(ref.Path, "/"), "/") {
		if name == "" {
			continue
		}
		dir, ok := e.(fs.Directory)
		if !ok {
			return nil, fmt.Errorf("%s/%s:%s is not a directory", ref.Namespace, ref.PVC, orText(walked, "/"))
		}
		child, err := dir.Child(ctx, name)
		if errors.Is(err, fs.ErrEntryNotFound) {
			return nil, fmt.Errorf("%s: no such file or directory in the backup (list it with `kubectl pvbackup ls`)", ref)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		walked += "/" + name
		e = child
	}
	return e, nil
}

// maxLink bounds a symlink's target (Linux allows 4,095 bytes).
const maxLink = 64 << 10

// readLink returns a symlink's target, read within maxLink bytes.
func readLink(ctx context.Context, c *contents, l fs.Symlink) (string, error) {
	oid, ok := objectID(l)
	if !ok || c == nil {
		return l.Readlink(ctx)
	}
	b, err := io.ReadAll(&walkReader{w: c.walkObject(ctx, oid, maxLink, false)})
	return string(b), err
}
