// Package verify is the engine of `kubectl pvbackup verify`: it proves, with the bucket's
// credentials and the password only, that a backup can be restored: its manifest parses, its
// resources archive decrypts and parses, and every Kopia snapshot of its volumes is there with
// its whole tree and every content it references (and, with ReadPercent, that share of the
// file data read back and authenticated).
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	kblob "github.com/kopia/kopia/repo/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// Config is what to verify.
type Config struct {
	Names       []string // backups to verify; empty with All
	All         bool     // every backup of the location (incomplete ones are listed, not verified)
	ReadPercent float64  // share of file data read back (0-100)
}

// Deps are the location and its passwords.
type Deps struct {
	Catalog *catalog.Catalog
	// ArchivePassword opens the resources archives; Repos the namespace repositories, read-only.
	ArchivePassword func() (string, error)
	Repos           *repo.Service
	Progress        progress.Reporter
}

// VolumeResult is one volume's verification.
type VolumeResult struct {
	Namespace     string `json:"namespace"`
	PVC           string `json:"pvc"`
	KopiaSnapshot string `json:"kopiaSnapshot,omitempty"`
	OK            bool   `json:"ok"`
	// Skipped says why a volume has nothing to verify (snapshot mode, failed, none).
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	*repo.VerifyStats
}

// BackupResult is one backup's verification.
type BackupResult struct {
	Name           string         `json:"name"`
	Status         catalog.Status `json:"status"`
	OK             bool           `json:"ok"`
	Skipped        string         `json:"skipped,omitempty"`
	ArchiveObjects int            `json:"archiveObjects"`
	Problems       []string       `json:"problems,omitempty"` // manifest and archive
	Volumes        []VolumeResult `json:"volumes,omitempty"`
}

// Result is a verify run.
type Result struct {
	Location    string         `json:"location"`
	ReadPercent float64        `json:"readPercent"`
	Backups     []BackupResult `json:"backups"`
}

// Failed returns the names of the backups that did not verify.
func (r *Result) Failed() []string {
	var out []string
	for _, b := range r.Backups {
		if !b.OK && b.Skipped == "" {
			out = append(out, b.Name)
		}
	}
	return out
}

// Run verifies the backups. Repositories are opened once per namespace for the whole run.
func Run(ctx context.Context, d Deps, cfg Config) (*Result, error) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	res := &Result{Location: d.Catalog.Location().String(), ReadPercent: cfg.ReadPercent, Backups: []BackupResult{}}
	names := cfg.Names
	skipped := map[string]catalog.Status{}
	if cfg.All {
		entries, err := d.Catalog.List(ctx)
		if err != nil {
			return nil, err
		}
		names = nil
		for _, e := range entries {
			names = append(names, e.Name)
			if e.Status == catalog.Incomplete {
				skipped[e.Name] = e.Status
			}
		}
	}
	repos := &repoCache{d: d, open: map[string]*openRepo{}}
	defer repos.close()
	for _, name := range names {
		if st, ok := skipped[name]; ok {
			res.Backups = append(res.Backups, BackupResult{Name: name, Status: st, Skipped: "no backup.json: interrupted or still being written"})
			continue
		}
		done := d.Progress.Start("verify " + name)
		br := verifyBackup(ctx, d, repos, name, cfg.ReadPercent)
		var err error
		if !br.OK {
			err = fmt.Errorf("backup %q is damaged", name)
		}
		done(summary(&br), err)
		res.Backups = append(res.Backups, br)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

func summary(b *BackupResult) string {
	var files, read, readBytes int64
	for _, v := range b.Volumes {
		if v.VerifyStats != nil {
			files, read, readBytes = files+v.Files, read+v.ReadFiles, readBytes+v.ReadBytes
		}
	}
	return fmt.Sprintf("%s, %s, %s, %d read back (%s)", progress.Plural(b.ArchiveObjects, "object", "objects"),
		progress.Plural(len(b.Volumes), "volume", "volumes"), progress.Plural(int(files), "file", "files"), read, progress.Bytes(readBytes))
}

func verifyBackup(ctx context.Context, d Deps, repos *repoCache, name string, readPercent float64) BackupResult {
	br := BackupResult{Name: name}
	m, err := d.Catalog.Manifest(ctx, name)
	if err != nil {
		br.Status, br.Problems = catalog.Incomplete, []string{err.Error()}
		return br
	}
	br.Status = m.Status
	br.ArchiveObjects, err = verifyArchive(ctx, d, m)
	if err != nil {
		br.Problems = append(br.Problems, err.Error())
	}
	vols := append([]catalog.Volume(nil), m.Volumes...)
	sort.SliceStable(vols, func(i, j int) bool { return vols[i].Namespace < vols[j].Namespace })
	ok := len(br.Problems) == 0
	for _, v := range vols {
		vr := verifyVolume(ctx, repos, v, readPercent)
		ok = ok && (vr.OK || vr.Skipped != "")
		br.Volumes = append(br.Volumes, vr)
	}
	br.OK = ok
	return br
}

// verifyArchive decrypts and parses every object of the resources archive, and checks it holds
// as many objects as the manifest says.
func verifyArchive(ctx context.Context, d Deps, m *catalog.Manifest) (int, error) {
	pw, err := d.ArchivePassword()
	if err != nil {
		return 0, err
	}
	rd, err := d.Catalog.NewReader(ctx, m.Name, catalog.ResourcesFile)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", catalog.ResourcesFile, err)
	}
	defer rd.Close()
	if m.Archive.Size > 0 && rd.Size() != m.Archive.Size {
		return 0, fmt.Errorf("archive %s is %d bytes; the manifest says %d", catalog.ResourcesFile, rd.Size(), m.Archive.Size)
	}
	ar, err := archive.NewReader(rd, pw)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", catalog.ResourcesFile, err)
	}
	n := 0
	for {
		k, data, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("archive %s, after %d objects: %w", catalog.ResourcesFile, n, err)
		}
		if !json.Valid(data) {
			return n, fmt.Errorf("archive %s: %s is not valid JSON", catalog.ResourcesFile, k.Path())
		}
		n++
	}
	if n != m.Items {
		return n, fmt.Errorf("archive %s holds %d objects; the manifest says %d", catalog.ResourcesFile, n, m.Items)
	}
	return n, nil
}

func verifyVolume(ctx context.Context, repos *repoCache, v catalog.Volume, readPercent float64) VolumeResult {
	vr := VolumeResult{Namespace: v.Namespace, PVC: v.PVC, KopiaSnapshot: v.KopiaSnapshot}
	if v.KopiaSnapshot == "" {
		switch {
		case v.Status != catalog.VolumeCompleted:
			vr.Skipped = "the volume's backup " + v.Status + ": no data to verify"
		case v.VolumeSnapshot != "":
			vr.Skipped = "snapshot mode: VolumeSnapshot " + v.VolumeSnapshot + " in the cluster, not in the location"
		default:
			vr.Skipped = "no volume data (mode " + v.Mode + ")"
		}
		return vr
	}
	or, err := repos.get(ctx, v.Namespace)
	if err != nil {
		vr.Error = err.Error()
		return vr
	}
	st, err := repo.VerifySnapshot(ctx, or.r, v.KopiaSnapshot, repo.VerifyOptions{ReadPercent: readPercent, Blobs: or.blobs})
	vr.VerifyStats = st
	switch {
	case err != nil:
		vr.Error = err.Error()
	case st.ProblemCount > 0:
		vr.Error = fmt.Sprintf("%d damaged or missing: %s: %s", st.ProblemCount, st.Problems[0].Path, st.Problems[0].Error)
	default:
		vr.OK = true
	}
	return vr
}

type openRepo struct {
	r     *repo.Repository
	close func()
	blobs map[kblob.ID]kblob.Metadata
	err   error
}

// repoCache opens each namespace's repository once, with its pack list.
type repoCache struct {
	d    Deps
	open map[string]*openRepo
}

func (c *repoCache) get(ctx context.Context, ns string) (*openRepo, error) {
	if or, ok := c.open[ns]; ok {
		return or, or.err
	}
	or := &openRepo{}
	c.open[ns] = or
	var err error
	or.r, or.close, err = c.d.Repos.OpenReadOnly(ctx, ns)
	if errors.Is(err, repo.ErrNoRepository) {
		err = fmt.Errorf("the repository of namespace %s is missing: %w", ns, err)
	}
	if err == nil {
		or.blobs, err = or.r.BlobMap(ctx)
	}
	or.err = err
	return or, err
}

func (c *repoCache) close() {
	for _, or := range c.open {
		if or.close != nil {
			or.close()
		}
	}
}
