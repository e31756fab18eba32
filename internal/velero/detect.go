package velero

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"
)

// ErrVeleroLocation is returned (wrapped) by CheckNotVelero for a prefix that holds Velero's data.
var ErrVeleroLocation = errors.New("this prefix belongs to Velero")

// maxProbe bounds the keys CheckNotVelero looks at under backups/.
const maxProbe = 100_000

// CheckNotVelero refuses a location (bucket narrowed to its prefix) that holds Velero's data:
// both tools keep backups/<name>/ and kopia/<namespace>/, and the keys/ of kubectl-pvbackup
// would make Velero mark its location Unavailable. Velero's marks are the directories only it
// writes (restores/, restic/, metadata/, plugins/) and a backups/<name>/velero-backup.json.
func CheckNotVelero(ctx context.Context, bucket *blob.Bucket, display string) error {
	it := bucket.List(&blob.ListOptions{Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", display, err)
		}
		switch obj.Key {
		case "restores/", "restic/", "metadata/", "plugins/":
			return refuseVelero(display, obj.Key)
		}
	}
	it = bucket.List(&blob.ListOptions{Prefix: "backups/"})
	for n := 0; n < maxProbe; n++ {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %sbackups/: %w", display, err)
		}
		if strings.HasSuffix(obj.Key, "/"+MetadataFile) && strings.Count(obj.Key, "/") == 2 {
			return refuseVelero(display, obj.Key)
		}
	}
	return nil
}

func refuseVelero(display, key string) error {
	return fmt.Errorf("%s holds %s, which Velero writes: %w; back up to another prefix (kubectl pvbackup velero list --from-velero reads Velero's backups without writing)", display, key, ErrVeleroLocation)
}
