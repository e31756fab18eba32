package hardlinks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// maxProblems bounds the problems a Relink result keeps (all are counted).
const maxProblems = 20

// Result is what Relink did.
type Result struct {
	// Linked are the paths that are now links of the first path of their group (already so
	// counts too: an in-place sync leaves what is right as it is).
	Linked       int
	Problems     []string
	ProblemCount int
}

func (r *Result) problem(format string, a ...any) {
	if r.ProblemCount++; len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

// Relink makes each group of rec one file again under dir, where the files were written apart:
// every path becomes a link of the group's first path. Paths are opened through an os.Root, so
// none leads out of dir, symlinks or not. A path that is missing, not a regular file, or not of
// its first path's size and time (a file changed since, or a record that lies) is left as it is
// and named in the result's problems; the error is for ctx and for dir itself.
// missingOK leaves paths that are not there out without a word (cp with --include/--exclude).
func Relink(ctx context.Context, dir string, rec *Record, missingOK bool) (Result, error) {
	var res Result
	if rec == nil || len(rec.Groups) == 0 {
		return res, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return res, err
	}
	defer root.Close()
	for _, g := range rec.Groups {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var first string
		var firstInfo fs.FileInfo
		for _, p := range g {
			if first == "" {
				fi, err := regular(root, p)
				switch {
				case err == nil:
					first, firstInfo = p, fi
				case !(missingOK && errors.Is(err, fs.ErrNotExist)):
					res.problem("%s: %v", p, err)
				}
				continue
			}
			err := link(root, first, firstInfo, p)
			switch {
			case err == nil:
				res.Linked++
			case !(missingOK && errors.Is(err, fs.ErrNotExist)):
				res.problem("%s: %v", p, err)
			}
		}
	}
	return res, nil
}

func regular(root *os.Root, p string) (fs.FileInfo, error) {
	fi, err := root.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return fi, nil
}

// link replaces p with a link of first (whose info is firstInfo), unless it is one already.
func link(root *os.Root, first string, firstInfo fs.FileInfo, p string) error {
	fi, err := regular(root, p)
	if err != nil {
		return err
	}
	if os.SameFile(firstInfo, fi) {
		return nil
	}
	if fi.Size() != firstInfo.Size() || !fi.ModTime().Equal(firstInfo.ModTime()) {
		return fmt.Errorf("not linked to %s: %d bytes of %s, %d of %s", first, fi.Size(), fi.ModTime().UTC().Format("2006-01-02T15:04:05.999999999Z"), firstInfo.Size(), firstInfo.ModTime().UTC().Format("2006-01-02T15:04:05.999999999Z"))
	}
	// A new name in p's directory, then renamed over p: p is never missing. The directory's
	// times, which the restore has set, are put back.
	dir := path.Dir(p)
	di, err := root.Lstat(dir)
	if err != nil {
		return err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := path.Join(dir, ".pvbackup-link-"+hex.EncodeToString(b))
	if err := root.Link(first, tmp); err != nil {
		return err
	}
	if err := root.Rename(tmp, p); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return root.Chtimes(dir, atime(di), di.ModTime())
}
