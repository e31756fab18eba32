package velero

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gocloud.dev/blob"
)

// Entry is one directory of backups/: a backup, or why it cannot be shown.
type Entry struct {
	Name    string  `json:"name"`
	Backup  *Backup `json:"backup,omitempty"`
	Problem string  `json:"problem,omitempty"` // set when Backup is nil
}

// List reads every backup's velero-backup.json, sorted by name. A directory that has none, or
// one that cannot be read, is listed with the reason.
func (l *Location) List(ctx context.Context) ([]Entry, error) {
	var names []string
	err := l.list(ctx, "backups/", l.Limits.Backups, func(obj *blob.ListObject) error {
		if obj.IsDir {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(obj.Key, "backups/"), "/"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list Velero backups in %s: %w", l.display, err)
	}
	sort.Strings(names)
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		e := Entry{Name: n}
		if err := ValidateName(n); err != nil {
			e.Problem = "not a Velero backup: " + err.Error()
			out = append(out, e)
			continue
		}
		b, err := l.Backup(ctx, n)
		switch {
		case err == nil:
			e.Backup = b
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, err
		case errors.Is(err, ErrNotFound):
			e.Problem = "no " + MetadataFile + ": not a Velero backup, or one Velero is still uploading"
		default:
			e.Problem = err.Error()
		}
		out = append(out, e)
	}
	return out, nil
}

// Backup reads backups/<name>/velero-backup.json. A backup without one is ErrNotFound.
func (l *Location) Backup(ctx context.Context, name string) (*Backup, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	data, err := l.readAll(ctx, backupKey(name, MetadataFile), l.Limits.MetadataBytes)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("no Velero backup %q in %s (no backups/%s/%s): %w", name, l.display, name, MetadataFile, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return ParseBackup(name, data)
}
