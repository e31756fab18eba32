package velero

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gocloud.dev/blob"
)

// Details is everything a backup's files say: what describe prints and what restore starts from.
type Details struct {
	Backup *Backup `json:"backup"`
	// Files are the objects in the backup's directory, with their sizes.
	Files []File `json:"files"`
	// TarballFormat is the tarball's metadata/version.
	TarballFormat string `json:"tarballFormat,omitempty"`
	// Objects counts the objects of the tarball (one copy each).
	Objects    int             `json:"objects"`
	Namespaces []string        `json:"namespaces"`
	Resources  []ResourceCount `json:"resources"`
	Volumes    []Volume        `json:"volumes"`
	// VolumesFrom says which files the volumes were read from.
	VolumesFrom string      `json:"volumesFrom"`
	Operations  []Operation `json:"itemOperations,omitempty"`
	Errors      *Messages   `json:"errorMessages,omitempty"`
	Warnings    *Messages   `json:"warningMessages,omitempty"`
	// Refusal is why a restore of the backup would be refused ("" when it would start): its
	// phase, its format, or a missing tarball. Volumes that cannot be restored are not refusals.
	Refusal string `json:"refusal,omitempty"`

	resources *Resources
}

// File is one object of the backup's directory.
type File struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// ResourceCount is how many objects of one kind Velero listed in -resource-list.
type ResourceCount struct {
	Kind  string `json:"kind"` // Velero's key: "<group>/<version>/<Kind>", "v1/<Kind>" for the core group
	Count int    `json:"count"`
}

// Operation is one asynchronous item operation (a DataUpload, for Velero's data mover).
type Operation struct {
	Action   string `json:"action"`
	Resource string `json:"resource"` // <resource>.<group> <namespace>/<name>
	ID       string `json:"id"`
	Phase    string `json:"phase"`
	Error    string `json:"error,omitempty"`
}

// Messages are the errors or the warnings of -results.gz.
type Messages struct {
	Velero     []string            `json:"velero,omitempty"`
	Cluster    []string            `json:"cluster,omitempty"`
	Namespaces map[string][]string `json:"namespaces,omitempty"`
}

// Len is the number of messages.
func (m *Messages) Len() int {
	if m == nil {
		return 0
	}
	n := len(m.Velero) + len(m.Cluster)
	for _, v := range m.Namespaces {
		n += len(v)
	}
	return n
}

// Tarball returns the tarball's objects that Describe read (nil when the backup has no tarball).
func (d *Details) Tarball() *Resources { return d.resources }

// Describe reads backup name: velero-backup.json, the files beside it and the resources tarball.
// A backup of a format whose major version is not FormatMajor is ErrFormat: its other files
// cannot be trusted to mean what this build reads in them.
func (l *Location) Describe(ctx context.Context, name string) (*Details, error) {
	b, err := l.Backup(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := checkFormat(b); err != nil {
		return nil, err
	}
	d := &Details{Backup: b, Namespaces: []string{}, Resources: []ResourceCount{}, Volumes: []Volume{}}
	present, err := l.files(ctx, name, d)
	if err != nil {
		return nil, err
	}
	if present[name+suffixTarball] {
		if d.resources, err = l.ReadResources(ctx, name); err != nil {
			return nil, err
		}
		d.TarballFormat, d.Objects = d.resources.FormatVersion, len(d.resources.Objects)
		if err := checkTarballFormat(b, d.TarballFormat); err != nil {
			return nil, err
		}
	}
	if err := l.readSideFiles(ctx, name, present, d); err != nil {
		return nil, err
	}
	if err := l.readVolumes(ctx, name, present, d); err != nil {
		return nil, err
	}
	if err := b.CheckRestorable(false); err != nil {
		d.Refusal = err.Error()
	} else if d.resources == nil {
		d.Refusal = fmt.Sprintf("backup %q has no resources tarball (%s)", name, name+suffixTarball)
	}
	return d, nil
}

// files lists the backup's directory into d.Files and returns the names present.
func (l *Location) files(ctx context.Context, name string, d *Details) (map[string]bool, error) {
	present := map[string]bool{}
	prefix := "backups/" + name + "/"
	err := l.list(ctx, prefix, l.Limits.ObjectsInBucket, func(obj *blob.ListObject) error {
		f := strings.TrimPrefix(obj.Key, prefix)
		if !obj.IsDir {
			present[f] = true
			d.Files = append(d.Files, File{Name: f, Size: obj.Size})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Name < d.Files[j].Name })
	return present, nil
}

// optional reads the gzipped JSON file of backup name with suffix into v when it is present.
func (l *Location) optional(ctx context.Context, name, suffix string, present map[string]bool, v any) (bool, error) {
	if !present[name+suffix] {
		return false, nil
	}
	if err := l.readGzipJSON(ctx, fileKey(name, suffix), v); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil // deleted since listed
		}
		return false, err
	}
	return true, nil
}

// readSideFiles reads the resource list, the results and the item operations.
func (l *Location) readSideFiles(ctx context.Context, name string, present map[string]bool, d *Details) error {
	var list map[string][]string
	if _, err := l.optional(ctx, name, suffixResourceList, present, &list); err != nil {
		return err
	}
	d.Namespaces, d.Resources = countResources(list)
	var results map[string]*Messages
	if _, err := l.optional(ctx, name, suffixResults, present, &results); err != nil {
		return err
	}
	d.Errors, d.Warnings = results["errors"], results["warnings"]
	var ops []struct {
		Spec struct {
			Action   string `json:"backupItemAction"`
			Resource struct {
				Group, Resource, Namespace, Name string
			} `json:"resourceIdentifier"`
			ID string `json:"operationID"`
		} `json:"spec"`
		Status struct {
			Phase string `json:"phase"`
			Error string `json:"error"`
		} `json:"status"`
	}
	if _, err := l.optional(ctx, name, suffixItemOperations, present, &ops); err != nil {
		return err
	}
	if len(ops) > l.Limits.ListItems {
		return fmt.Errorf("%s holds %d operations: %w", fileKey(name, suffixItemOperations), len(ops), ErrUnreadable)
	}
	for _, o := range ops {
		r := o.Spec.Resource
		gr := r.Resource
		if r.Group != "" {
			gr += "." + r.Group
		}
		d.Operations = append(d.Operations, Operation{Action: o.Spec.Action, Resource: gr + " " + strings.TrimPrefix(r.Namespace+"/"+r.Name, "/"), ID: o.Spec.ID, Phase: o.Status.Phase, Error: o.Status.Error})
	}
	return nil
}

// countResources turns Velero's resource list into namespaces and counts per kind.
func countResources(list map[string][]string) ([]string, []ResourceCount) {
	nss := map[string]bool{}
	counts := []ResourceCount{}
	for kind, items := range list {
		counts = append(counts, ResourceCount{Kind: kind, Count: len(items)})
		for _, it := range items {
			if ns, _, ok := strings.Cut(it, "/"); ok && ns != "" {
				nss[ns] = true
			}
		}
	}
	sort.Slice(counts, func(i, j int) bool { return counts[i].Kind < counts[j].Kind })
	out := make([]string, 0, len(nss))
	for ns := range nss {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out, counts
}

// readVolumes fills d.Volumes from volumeinfo (Velero 1.13 and later), else from the
// PodVolumeBackups, the DataUploads of the tarball and the snapshot files.
func (l *Location) readVolumes(ctx context.Context, name string, present map[string]bool, d *Details) error {
	var infos []volumeInfo
	ok, err := l.optional(ctx, name, suffixVolumeInfo, present, &infos)
	if err != nil {
		return err
	}
	if len(infos) > l.Limits.ListItems {
		return fmt.Errorf("%s holds %d volumes: %w", fileKey(name, suffixVolumeInfo), len(infos), ErrUnreadable)
	}
	if ok {
		d.VolumesFrom = name + suffixVolumeInfo
		if d.Volumes, err = fromVolumeInfo(infos); err != nil {
			return err
		}
		return addNodeOS(d.Volumes, d.resources)
	}
	return l.readLegacyVolumes(ctx, name, present, d)
}

func (l *Location) readLegacyVolumes(ctx context.Context, name string, present map[string]bool, d *Details) error {
	var pvbs []podVolumeBackup
	var native []nativeSnapshot
	var vss []csiVolumeSnapshot
	var vscs []csiSnapshotContent
	from := []string{}
	for _, f := range []struct {
		suffix string
		v      any
	}{{suffixPodVolumeBackups, &pvbs}, {suffixNativeSnapshots, &native}, {suffixCSIVolumeSnapshots, &vss}, {suffixCSISnapshotContent, &vscs}} {
		ok, err := l.optional(ctx, name, f.suffix, present, f.v)
		if err != nil {
			return err
		}
		if ok {
			from = append(from, name+f.suffix)
		}
	}
	if n := len(pvbs) + len(native) + len(vss) + len(vscs); n > l.Limits.ListItems {
		return fmt.Errorf("backup %q lists %d volumes: %w", name, n, ErrUnreadable)
	}
	d.Volumes = append(d.Volumes, fromPodVolumeBackups(pvbs, d.resources)...)
	if d.resources != nil {
		du, err := fromDataUploads(d.resources)
		if err != nil {
			return err
		}
		d.Volumes = append(d.Volumes, du...)
		from = append(from, "the DataUploads of "+name+suffixTarball)
	}
	d.Volumes = append(d.Volumes, fromSnapshots(native, vss, vscs)...)
	sortVolumes(d.Volumes)
	d.VolumesFrom = strings.Join(from, ", ")
	return nil
}
