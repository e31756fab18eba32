package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// maxFiles bounds the files of one backup that are copied (a backup writes four).
const maxFiles = 64

// copyFiles copies a backup's files: those the second location lacks, the manifest last and
// only once (written new: a backup of that name that is not this one is never written over).
func (d Deps) copyFiles(ctx context.Context, name string) Item {
	it := Item{Name: name, Action: "copied"}
	done := d.Progress.Start("copy backup " + name)
	err := d.copyFilesErr(ctx, name, &it)
	if err != nil {
		it.Action, it.Error = "failed", err.Error()
	}
	done(fmt.Sprintf("%s, %s", progress.Plural(int(it.Files), "file", "files"), progress.Bytes(it.Bytes)), err)
	return it
}

func (d Deps) copyFilesErr(ctx context.Context, name string, it *Item) error {
	src, err := files(ctx, d.From.Bucket(), name)
	if err != nil {
		return fmt.Errorf("list backup %q in %s: %w", name, d.From, d.From.Scrub(err))
	}
	have, err := files(ctx, d.To.Bucket(), name)
	if err != nil {
		return fmt.Errorf("list backup %q in %s: %w", name, d.To, d.To.Scrub(err))
	}
	manifestKey := catalog.Key(name, catalog.ManifestFile)
	if n, ok := have[manifestKey]; ok {
		if n != src[manifestKey] {
			return fmt.Errorf("%s already has a backup %q that is not this one (its %s differs): nothing was written over it", d.To, name, catalog.ManifestFile)
		}
		it.Action = "present"
		return nil
	}
	for key, n := range src {
		if key == manifestKey || have[key] == n {
			continue
		}
		moved, err := d.copyFile(ctx, key)
		if err != nil {
			return err
		}
		it.Files++
		it.Bytes += moved
	}
	// Read bounded: a manifest larger than any this tool writes is refused before it is in memory.
	data, _, err := d.From.ReadVersion(ctx, manifestKey, catalog.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("read %s of backup %q in %s (larger than any this tool writes, or unreadable): %w", catalog.ManifestFile, name, d.From, d.From.Scrub(err))
	}
	err = d.To.WriteNew(ctx, manifestKey, data, "application/json")
	if errors.Is(err, store.ErrExists) {
		// Another copy wrote it since: the same manifest is the same backup.
		if back, _, rerr := d.To.ReadVersion(ctx, manifestKey, catalog.MaxManifestSize); rerr == nil && bytes.Equal(back, data) {
			it.Action = "present"
			return nil
		}
		return fmt.Errorf("%s got another backup %q while it was copied: nothing was written over it", d.To, name)
	}
	if err != nil {
		return err
	}
	it.Files++
	it.Bytes += int64(len(data))
	return nil
}

// copyFile streams one file of a backup across (locked, when the second location is).
func (d Deps) copyFile(ctx context.Context, key string) (int64, error) {
	r, err := d.From.Bucket().NewReader(ctx, key, nil)
	if err != nil {
		return 0, fmt.Errorf("read %s in %s: %w", key, d.From, d.From.Scrub(err))
	}
	defer r.Close()
	cr := &countReader{r: d.throttle.Reader(ctx, r)}
	w := d.To.NewStream(ctx, key, &blob.WriterOptions{ContentType: r.ContentType()})
	if _, err := io.Copy(w, cr); err != nil {
		_ = w.Close()
		return 0, fmt.Errorf("copy %s to %s: %w", key, d.To, d.To.Scrub(err))
	}
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("copy %s to %s: %w", key, d.To, d.To.Scrub(err))
	}
	return cr.n, nil
}

// files maps each file of a backup's directory to its size.
func files(ctx context.Context, b *blob.Bucket, name string) (map[string]int64, error) {
	out := map[string]int64{}
	it := b.List(&blob.ListOptions{Prefix: catalog.Key(name, "")})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) == maxFiles {
			return nil, fmt.Errorf("more than %d files: not a backup this tool wrote", maxFiles)
		}
		if !store.IsTemp(obj.Key) {
			out[obj.Key] = obj.Size
		}
	}
}
