package files

import (
	"context"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
)

// relinkCopy makes the hard links of the copied tree again in cfg.Dest (paths left out by
// --include/--exclude are not missed). What cannot be linked is an error of the copy.
func relinkCopy(ctx context.Context, cfg CopyConfig, links *hardlinks.Record, res *CopyResult) {
	if links == nil {
		return
	}
	r, err := hardlinks.Relink(ctx, cfg.Dest, links, len(cfg.Include)+len(cfg.Exclude) > 0)
	res.HardLinks = int64(r.Linked)
	if err != nil {
		res.Errors = append(res.Errors, Problem{Path: ".", Reason: "link hard links again: " + err.Error()})
	}
	for _, p := range r.Problems {
		res.Errors = append(res.Errors, Problem{Path: p, Reason: "hard link not made again"})
	}
}
