package copier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// formatBlob is Kopia's format blob: its uniqueID is what the repository's keys derive from.
const formatBlob = "kopia.repository"

// maxFormatBlob bounds what is read of a format blob (a real one is ~1 KiB).
const maxFormatBlob = 1 << 20

// sameRepository refuses to copy into a repository of the second location that is not this one (a
// backup made there directly created its own, with its own uniqueID): blobs of two repositories
// cannot be merged. As Kopia's repository sync-to checks.
func sameRepository(ctx context.Context, from, to *blob.Bucket, ns string) error {
	dst, err := readFormat(ctx, to)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil // a new repository there: the copy makes it
	}
	if err != nil {
		return fmt.Errorf("read the second location's %s of %s: %w", formatBlob, ns, err)
	}
	src, err := readFormat(ctx, from)
	if err != nil {
		return fmt.Errorf("read the %s of %s: %w", formatBlob, ns, err)
	}
	if bytes.Equal(src, dst) || uniqueID(src) != "" && uniqueID(src) == uniqueID(dst) {
		return nil
	}
	return fmt.Errorf("the second location has a volume data repository of its own for namespace %s (a backup made there, not a copy): two repositories cannot be merged; copy into a new location or prefix", ns)
}

func readFormat(ctx context.Context, b *blob.Bucket) ([]byte, error) {
	r, err := b.NewReader(ctx, formatBlob, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, maxFormatBlob))
}

func uniqueID(b []byte) string {
	var f struct {
		UniqueID string `json:"uniqueID"`
	}
	if json.Unmarshal(b, &f) != nil {
		return ""
	}
	return f.UniqueID
}
