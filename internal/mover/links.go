package mover

import (
	"context"
	"errors"
	"fmt"

	"github.com/kopia/kopia/fs"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
)

// backupLinks is a backup's hard link record (nil: the volume has none) and the root entry name
// it is stored under.
type backupLinks struct {
	rec  *hardlinks.Record
	name string
}

// scanLinks finds the volume's hard links before the upload. A volume with more than a record
// holds is backed up with its hard links as separate files, and the result says so.
func scanLinks(ctx context.Context, source string, res *Result) (*backupLinks, error) {
	rec, err := hardlinks.Scan(ctx, source)
	if errors.Is(err, hardlinks.ErrTooMany) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%v (%d): hard links are backed up as separate files", err, hardlinks.MaxPaths))
		return &backupLinks{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find hard links in %s: %w", source, err)
	}
	if rec == nil {
		return &backupLinks{}, nil
	}
	name, err := hardlinks.FreeName(source)
	if err != nil {
		return nil, err
	}
	return &backupLinks{rec: rec, name: name}, nil
}

// attach adds the record to the root the uploader reads.
func (l *backupLinks) attach(root fs.Entry) (fs.Entry, error) {
	dir, ok := root.(fs.Directory)
	if l.rec == nil || !ok {
		return root, nil
	}
	return hardlinks.Attach(dir, l.name, l.rec)
}

// tag names the record's entry in the snapshot's tags.
func (l *backupLinks) tag(tags map[string]string) {
	if l.rec != nil {
		tags[hardlinks.Tag] = l.name
	}
}

// count reports the links, and leaves the record out of the file count.
func (l *backupLinks) count(res *Result) {
	if l == nil || l.rec == nil {
		return
	}
	res.HardLinks = int64(l.rec.Links())
	if res.Files > 0 {
		res.Files--
	}
}

// relink links again, under target, the files a restore wrote apart. Paths it could not link
// are file errors: with OnErrorFail the restore fails naming them.
func relink(ctx context.Context, target string, rec *hardlinks.Record, cfg RestoreConfig, res *Result) error {
	if rec == nil || cfg.DiffOnly {
		return nil
	}
	r, err := hardlinks.Relink(ctx, target, rec, false)
	res.HardLinks = int64(r.Linked)
	if err != nil {
		return fmt.Errorf("link hard links again: %w", err)
	}
	if r.ProblemCount == 0 {
		return nil
	}
	res.ErrorCount += int64(r.ProblemCount)
	for _, p := range r.Problems {
		res.Errors = append(res.Errors, FileError{Path: p, Message: "hard link not restored"})
	}
	if cfg.OnError == OnErrorSkip {
		return nil
	}
	return fmt.Errorf("%d hard link(s) could not be made again, first %s (pass --on-error skip to keep the files apart)", r.ProblemCount, r.Problems[0])
}
