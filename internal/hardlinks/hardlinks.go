// Package hardlinks keeps what Kopia does not: which paths of a volume are hard links of one
// file. A backup scans the volume for regular files with more than one link and stores the
// groups of paths sharing an inode as a small record file at the root of the snapshot, under a
// name its snapshot's tag gives (so a user's file of that name is never taken for it); a restore
// (and cp, and an in-place sync) writes the files as Kopia restores them, then links each group
// again. The record is read from a backup, so it is untrusted: its size, path count and paths
// are bounded and checked, and a link is made only between regular files under the target
// reached without symlinks, of the same size and time.
package hardlinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Tag is the snapshot tag whose value names the root entry that holds the record. Snapshots
// without it have no record (no hard links, or made before records existed).
const Tag = "pvbackup-hardlinks"

// Name is the record's root entry name, unless the volume has an entry of that name.
const Name = ".pvbackup-hardlinks.json"

// Bounds on a record read from a backup.
const (
	MaxBytes      = 128 << 20
	MaxPaths      = 4 << 20
	maxPathLength = 4096
	version       = 1
)

// ErrTooMany is returned by Scan for a volume with more than MaxPaths hard-linked paths: a record
// a restore would refuse.
var ErrTooMany = errors.New("more hard-linked paths than a record may hold")

// Record is the groups of paths (relative to the volume's root, with slashes) that are one file.
type Record struct {
	Version int        `json:"version"`
	Groups  [][]string `json:"groups"`
}

// Links is the number of paths that are links to another path of their group: the files a
// restore does not write a second time.
func (r *Record) Links() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, g := range r.Groups {
		n += len(g) - 1
	}
	return n
}

// Encode is the record as stored.
func (r *Record) Encode() ([]byte, error) {
	return json.Marshal(r)
}

// ErrInvalid is wrapped by every refusal of a record.
var ErrInvalid = errors.New("invalid hard link record")

// Read parses a record from a backup, refusing one larger than MaxBytes or with more than
// MaxPaths paths, an unknown version, a group of fewer than two paths, a path that is not clean
// and relative (no "..", no leading "/"), or a path in two groups.
func Read(r io.Reader) (*Record, error) {
	lr := &io.LimitedReader{R: r, N: MaxBytes + 1}
	var rec Record
	if err := json.NewDecoder(lr).Decode(&rec); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxBytes)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if rec.Version != version {
		return nil, fmt.Errorf("%w: version %d (this build reads version %d)", ErrInvalid, rec.Version, version)
	}
	seen := map[string]bool{}
	for i, g := range rec.Groups {
		if len(g) < 2 {
			return nil, fmt.Errorf("%w: group %d has %d paths", ErrInvalid, i, len(g))
		}
		for _, p := range g {
			if err := checkPath(p); err != nil {
				return nil, fmt.Errorf("%w: group %d: %v", ErrInvalid, i, err)
			}
			if seen[p] {
				return nil, fmt.Errorf("%w: path %q is in two groups", ErrInvalid, p)
			}
			if seen[p] = true; len(seen) > MaxPaths {
				return nil, fmt.Errorf("%w: more than %d paths", ErrInvalid, MaxPaths)
			}
		}
	}
	return &rec, nil
}

func checkPath(p string) error {
	switch {
	case p == "" || len(p) > maxPathLength:
		return fmt.Errorf("path of %d bytes", len(p))
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q holds a NUL", p)
	case path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q is not clean and relative", p)
	}
	return nil
}

// Within returns the groups' paths under dir (a clean relative path, "" or "." for all),
// relative to dir, keeping groups that still have two paths: a restore of one directory links
// what that directory holds.
func (r *Record) Within(dir string) *Record {
	if r == nil {
		return nil
	}
	dir = strings.Trim(path.Clean("/"+dir), "/")
	if dir == "" {
		return r
	}
	out := &Record{Version: r.Version}
	for _, g := range r.Groups {
		var in []string
		for _, p := range g {
			if rest, ok := strings.CutPrefix(p, dir+"/"); ok {
				in = append(in, rest)
			}
		}
		if len(in) > 1 {
			out.Groups = append(out.Groups, in)
		}
	}
	return out
}

// sortGroups orders paths in each group and groups by their first path.
func sortGroups(groups [][]string) {
	for _, g := range groups {
		sort.Strings(g)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i][0] < groups[j][0] })
}
