// Package velero reads a backup storage location that Velero (1.x) wrote: its backups, the files
// beside them, the resources tarball, and where each volume's data is. It never writes to the
// bucket: every call is a list, a stat or a bounded read, and the bucket is treated as untrusted
// (sizes, decompressed sizes, entry counts and paths are all checked).
//
// The layout under the location's prefix (Velero's pkg/persistence/object_store_layout.go):
//
//	backups/<name>/velero-backup.json                      the Backup object as Velero saw it last
//	backups/<name>/<name>.tar.gz                           the resources tarball
//	backups/<name>/<name>-volumeinfo.json.gz               one entry per volume (Velero 1.13 and later)
//	backups/<name>/<name>-podvolumebackups.json.gz         the PodVolumeBackups (fs-backup)
//	backups/<name>/<name>-itemoperations.json.gz           the asynchronous operations (data movement)
//	backups/<name>/<name>-resource-list.json.gz            "<group>/<version>/<Kind>" → ["ns/name", ...]
//	backups/<name>/<name>-results.gz                       errors and warnings
//	backups/<name>/<name>-volumesnapshots.json.gz          native (cloud provider) snapshots
//	backups/<name>/<name>-csi-volumesnapshots.json.gz      CSI VolumeSnapshots (written up to 1.16)
//	backups/<name>/<name>-csi-volumesnapshotcontents.json.gz
//	kopia/<namespace>/                                     one Kopia repository per source namespace
//	restic/<namespace>/                                    one restic repository per namespace (old)
package velero

import (
	"fmt"
	"regexp"
)

// MetadataFile is the Backup object's file in a backup's directory.
const MetadataFile = "velero-backup.json"

// File suffixes beside velero-backup.json: backups/<name>/<name><suffix>.
const (
	suffixTarball            = ".tar.gz"
	suffixVolumeInfo         = "-volumeinfo.json.gz"
	suffixPodVolumeBackups   = "-podvolumebackups.json.gz"
	suffixItemOperations     = "-itemoperations.json.gz"
	suffixResourceList       = "-resource-list.json.gz"
	suffixResults            = "-results.gz"
	suffixNativeSnapshots    = "-volumesnapshots.json.gz"
	suffixCSIVolumeSnapshots = "-csi-volumesnapshots.json.gz"
	suffixCSISnapshotContent = "-csi-volumesnapshotcontents.json.gz"
)

// backupKey is the key of file (MetadataFile or <name><suffix>) of backup name.
func backupKey(name, file string) string { return "backups/" + name + "/" + file }

// fileKey is the key of backup name's file with suffix.
func fileKey(name, suffix string) string { return backupKey(name, name+suffix) }

// RepositoryPrefix is where Velero keeps the Kopia repository of a source namespace.
func RepositoryPrefix(namespace string) string { return "kopia/" + namespace + "/" }

// A Velero backup is a Kubernetes object: its name is a DNS-1123 subdomain.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// ValidateName checks that name can be a Velero backup's, which also makes it safe in a key.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("backup name %q is not valid for a Velero backup: it is a Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253)", name)
	}
	return nil
}

// A namespace is a DNS-1123 label: Velero's repository of it is kopia/<namespace>/.
var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func validNamespace(ns string) bool { return labelRE.MatchString(ns) }
