package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// read reads the backup's objects and volume records, and starts the Result.
func (r *run) read(ctx context.Context) error {
	h, entries, err := readBackup(ctx, r.d, r.cfg)
	if err != nil {
		return err
	}
	r.res = &Result{Backup: r.cfg.Backup, DryRun: r.cfg.DryRun, Summary: map[Action]int{}, Warnings: h.Warnings}
	r.entries = entries
	for _, v := range h.Volumes {
		r.vols[v.Namespace+"/"+v.PVC] = v
	}
	return nil
}

// readBackup reads the backup's header and objects, from d.Source when set, else from the
// catalog: every refusal comes before anything in the cluster changes.
func readBackup(ctx context.Context, d Deps, cfg Config) (SourceHeader, []*entry, error) {
	if d.Source != nil {
		done := d.Progress.Start("read backup " + cfg.Backup)
		h, entries, err := readSource(ctx, d.Source, cfg.Backup)
		if err == nil {
			err = checkMapping(cfg, h.Namespaces)
		}
		if err != nil {
			done("", err)
			return SourceHeader{}, nil, err
		}
		done(progress.Plural(len(entries), "object", "objects"), nil)
		return h, entries, nil
	}
	m, err := d.Catalog.Manifest(ctx, cfg.Backup)
	if err != nil {
		return SourceHeader{}, nil, err
	}
	if m.FormatVersion < catalog.FormatLocationKey {
		return SourceHeader{}, nil, fmt.Errorf("backup %q has format %d: its archive and volume data are encrypted with the password itself, as development builds did before per-namespace keys (v0.1.0 was never released); this build cannot open it: restore it with the build that made it, and back up again: %w", cfg.Backup, m.FormatVersion, catalog.ErrOldFormat)
	}
	if m.Status == catalog.Failed {
		return SourceHeader{}, nil, fmt.Errorf("backup %q failed and has nothing to restore: %s", cfg.Backup, strings.Join(m.Errors, "; "))
	}
	if err := checkMapping(cfg, m.Namespaces); err != nil {
		return SourceHeader{}, nil, err
	}
	h := SourceHeader{Namespaces: m.Namespaces, Volumes: m.Volumes}
	if m.Status == catalog.PartiallyFailed {
		h.Warnings = append(h.Warnings, fmt.Sprintf("backup %q is PartiallyFailed: %s", cfg.Backup, strings.Join(m.Errors, "; ")))
	}
	done := d.Progress.Start("read backup " + cfg.Backup)
	entries, err := readArchive(ctx, d.Catalog, cfg.Backup, cfg.ArchiveKey)
	if err != nil {
		done("", err)
		return SourceHeader{}, nil, err
	}
	done(progress.Plural(len(entries), "object", "objects"), nil)
	return h, entries, nil
}

func readArchive(ctx context.Context, c *catalog.Catalog, name, key string) ([]*entry, error) {
	rd, err := c.NewReader(ctx, name, catalog.ResourcesFile)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	ar, err := archive.NewReader(rd, key)
	if err != nil {
		if errors.Is(err, archive.ErrWrongPassword) {
			// The password opened the location's key (or we would not be here): the archive was
			// encrypted under another key, so the key file or the archive was replaced.
			return nil, fmt.Errorf("the archive of backup %q in %s does not open with the location's key: it was encrypted under another location key (was keys/location.age or the archive replaced or copied from another location?): %w", name, c.Location(), err)
		}
		return nil, fmt.Errorf("backup %q: %w", name, err)
	}
	var out []*entry
	for {
		k, data, err := ar.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backup %q: %w", name, err)
		}
		var o unstructured.Unstructured
		if err := json.Unmarshal(data, &o.Object); err != nil {
			return nil, fmt.Errorf("backup %q: %s is not a JSON object: %w", name, k.Path(), err)
		}
		if _, ok := o.Object["metadata"].(map[string]any); !ok {
			return nil, fmt.Errorf("backup %q: %s has no metadata", name, k.Path())
		}
		out = append(out, &entry{key: k, gr: k.GVR.GroupResource(), obj: &o, oldUID: o.GetUID()})
	}
}
