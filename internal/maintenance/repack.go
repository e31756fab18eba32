package maintenance

import (
	"context"
	"fmt"
	"sort"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	kmaint "github.com/kopia/kopia/repo/maintenance"
)

// maxUnused is the dead bytes a full run may leave in packs that still hold live contents, as a
// share of the live bytes (restic's prune has the same knob, default 5 %): the sparsest packs are
// rewritten first, so the fewest bytes are copied for the most freed.
const maxUnused = 0.1

// repack rewrites the live contents of sparse packs into new packs. Kopia's own full cycle
// rewrites only packs that are short in size, and copies their deleted contents along: a
// full-size pack whose contents deleted snapshots mostly dropped keeps its dead bytes for ever
// (five backups with 20 % of the files changed, pruned to the newest, stayed at 1.80x one fresh
// backup). Dead bytes are counted against the pack's size in the bucket, since contents dropped
// from the index no longer name their pack. Once rewritten, the old pack holds no live content
// and Kopia's next cycle deletes it after its safety margins; contents younger than the margins
// are left where they are (Kopia's RewriteMinAge), so a backup running meanwhile is not touched.
// It returns the bytes rewritten.
func repack(ctx context.Context, dw kopiarepo.DirectRepositoryWriter, safety Safety) (int64, error) {
	ids, err := sparseContents(ctx, dw)
	if err != nil {
		return 0, fmt.Errorf("find sparse packs: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	st, err := kmaint.RewriteContents(ctx, dw, &kmaint.RewriteContentsOptions{ContentIDs: ids}, safety.kopia())
	if err != nil {
		return 0, fmt.Errorf("rewrite %d live contents of sparse packs: %w", len(ids), err)
	}
	return st.RewrittenContentSize, nil
}

// packUse is one pack's live and dead bytes and its live contents.
type packUse struct {
	live, dead int64
	ids        []content.ID
}

// sparseContents lists the live contents of the sparsest packs, enough of them that the dead
// bytes left are at most maxUnused of the live ones. Packs with no live content at all are
// Kopia's to delete and count as freed.
func sparseContents(ctx context.Context, dr kopiarepo.DirectRepository) ([]content.ID, error) {
	use := map[blob.ID]*packUse{}
	for _, prefix := range content.PackBlobIDPrefixes {
		err := dr.BlobReader().ListBlobs(ctx, prefix, func(m blob.Metadata) error {
			use[m.BlobID] = &packUse{dead: m.Length}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var live, dead int64
	err := dr.ContentReader().IterateContents(ctx, content.IterateOptions{}, func(ci content.Info) error {
		if p := use[ci.PackBlobID]; p != nil {
			p.live += int64(ci.PackedLength)
			p.dead -= int64(ci.PackedLength)
			p.ids = append(p.ids, ci.ContentID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var packs []packUse
	for _, p := range use {
		live += p.live
		if p.live > 0 && p.dead > 0 {
			packs = append(packs, *p)
			dead += p.dead
		}
	}
	return pickSparse(packs, live, dead), nil
}

// pickSparse takes packs in order of their live share until the dead bytes left are at most
// maxUnused of live.
func pickSparse(packs []packUse, live, dead int64) []content.ID {
	sort.Slice(packs, func(i, j int) bool {
		return packs[i].live*(packs[j].live+packs[j].dead) < packs[j].live*(packs[i].live+packs[i].dead)
	})
	var ids []content.ID
	for _, p := range packs {
		if float64(dead) <= maxUnused*float64(live) {
			break
		}
		ids = append(ids, p.ids...)
		dead -= p.dead
	}
	return ids
}
