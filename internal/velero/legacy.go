package velero

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Before Velero 1.13 a backup has no volumeinfo file: its volumes are its PodVolumeBackups (the
// -podvolumebackups file), its DataUploads (objects in the tarball, named from each claim by the
// annotation velero.io/data-upload-name), and its CSI and native snapshots (their own files).

// DataUploadAnnotation is set by Velero on a claim whose snapshot data a DataUpload moved:
// "<velero namespace>/<DataUpload name>".
const DataUploadAnnotation = "velero.io/data-upload-name"

var (
	grDataUploads = schema.GroupResource{Group: "velero.io", Resource: "datauploads"}
	grPods        = schema.GroupResource{Resource: "pods"}
	grPVCs        = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

// podVolumeBackup is the part of a PodVolumeBackup (velero.io/v1) read here.
type podVolumeBackup struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Pod struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"pod"`
		Volume         string `json:"volume"`
		UploaderType   string `json:"uploaderType"`
		RepoIdentifier string `json:"repoIdentifier"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		SnapshotID string `json:"snapshotID"`
		Progress   struct {
			TotalBytes int64 `json:"totalBytes"`
		} `json:"progress"`
	} `json:"status"`
}

// dataUpload is the part of a DataUpload (velero.io/v2alpha1) read here.
type dataUpload struct {
	Metadata struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		SnapshotType    string `json:"snapshotType"`
		SourcePVC       string `json:"sourcePVC"`
		SourceNamespace string `json:"sourceNamespace"`
		DataMover       string `json:"datamover"`
		CSISnapshot     *struct {
			Driver string `json:"driver"`
		} `json:"csiSnapshot"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		SnapshotID string `json:"snapshotID"`
		NodeOS     string `json:"nodeOS"`
		Progress   struct {
			TotalBytes int64 `json:"totalBytes"`
		} `json:"progress"`
	} `json:"status"`
}

// objectMeta reads an object's metadata and, for pods and claims, the parts the join needs.
type claimObject struct {
	Metadata struct {
		Namespace   string            `json:"namespace"`
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		VolumeName string `json:"volumeName"`
		Volumes    []struct {
			Name string `json:"name"`
			PVC  *struct {
				ClaimName string `json:"claimName"`
			} `json:"persistentVolumeClaim"`
		} `json:"volumes"`
	} `json:"spec"`
}

// fromPodVolumeBackups turns PodVolumeBackups into volumes; pods (from the tarball) name the
// claims behind the pod volumes.
func fromPodVolumeBackups(pvbs []podVolumeBackup, res *Resources) []Volume {
	claims := podClaims(res)
	out := make([]Volume, 0, len(pvbs))
	for _, p := range pvbs {
		v := Volume{
			Namespace: p.Spec.Pod.Namespace, Pod: p.Spec.Pod.Name, PodVolume: p.Spec.Volume,
			Method: MethodFSBackup, Uploader: p.Spec.UploaderType, SnapshotID: p.Status.SnapshotID,
			Phase: p.Status.Phase, Size: p.Status.Progress.TotalBytes,
		}
		if v.Uploader == "" || strings.Contains(p.Spec.RepoIdentifier, "/restic/") {
			v.Uploader = "restic" // Velero before 1.10 had no uploader type: restic was the only one
		}
		v.PVC = claims[v.Namespace+"/"+v.Pod+":"+v.PodVolume]
		v.Empty = v.Phase == "Completed" && v.SnapshotID == ""
		v.judge()
		out = append(out, v)
	}
	return out
}

// podClaims maps "ns/pod:volume" to the claim the pod's volume mounts.
func podClaims(res *Resources) map[string]string {
	m := map[string]string{}
	if res == nil {
		return m
	}
	for _, o := range res.Objects {
		if o.GroupResource != grPods {
			continue
		}
		var p claimObject
		if json.Unmarshal(o.Data, &p) != nil {
			continue
		}
		for _, vol := range p.Spec.Volumes {
			if vol.PVC != nil {
				m[o.Namespace+"/"+o.Name+":"+vol.Name] = vol.PVC.ClaimName
			}
		}
	}
	return m
}

// dataUploads reads the DataUpload objects of the tarball, by "<namespace>/<name>".
func dataUploads(res *Resources) (map[string]dataUpload, error) {
	m := map[string]dataUpload{}
	if res == nil {
		return m, nil
	}
	for _, o := range res.Objects {
		if o.GroupResource != grDataUploads {
			continue
		}
		var du dataUpload
		if err := json.Unmarshal(o.Data, &du); err != nil {
			return nil, fmt.Errorf("DataUpload %s/%s in the tarball: %v: %w", o.Namespace, o.Name, err, ErrUnreadable)
		}
		m[o.Namespace+"/"+o.Name] = du
	}
	return m, nil
}

// fromDataUploads makes a volume of each claim that names a DataUpload (velero.io/data-upload-name),
// joined to that DataUpload; a claim whose DataUpload is missing is reported, not restorable.
func fromDataUploads(res *Resources) ([]Volume, error) {
	uploads, err := dataUploads(res)
	if err != nil {
		return nil, err
	}
	var out []Volume
	for _, o := range res.Objects {
		if o.GroupResource != grPVCs {
			continue
		}
		var c claimObject
		if json.Unmarshal(o.Data, &c) != nil {
			continue
		}
		ref := c.Metadata.Annotations[DataUploadAnnotation]
		if ref == "" {
			continue
		}
		v := Volume{Namespace: o.Namespace, PVC: o.Name, PV: c.Spec.VolumeName, Method: MethodDataMover}
		du, ok := uploads[ref]
		if !ok {
			v.Reason = fmt.Sprintf("its DataUpload %q (annotation %s) is not in the backup", ref, DataUploadAnnotation)
			out = append(out, v)
			continue
		}
		applyDataUpload(&v, du)
		v.judge()
		out = append(out, v)
	}
	return out, nil
}

func applyDataUpload(v *Volume, du dataUpload) {
	v.DataMover, v.Uploader, v.SnapshotID = du.Spec.DataMover, "kopia", du.Status.SnapshotID
	if v.DataMover == "" {
		v.DataMover = "velero"
	}
	v.Phase, v.NodeOS, v.Size = du.Status.Phase, du.Status.NodeOS, du.Status.Progress.TotalBytes
	if du.Spec.SourceNamespace != "" {
		v.Namespace = du.Spec.SourceNamespace
	}
	if du.Spec.CSISnapshot != nil {
		v.Driver = du.Spec.CSISnapshot.Driver
	}
}

// addNodeOS completes volumeinfo's data-mover volumes with what only the DataUpload says: the
// OS of the node that moved the data (a Windows volume is not restored here).
func addNodeOS(vols []Volume, res *Resources) error {
	uploads, err := dataUploads(res)
	if err != nil {
		return err
	}
	bySource := map[string]dataUpload{}
	for _, du := range uploads {
		bySource[du.Spec.SourceNamespace+"/"+du.Spec.SourcePVC] = du
	}
	for i := range vols {
		v := &vols[i]
		if du, ok := bySource[v.Namespace+"/"+v.PVC]; ok && v.Method == MethodDataMover && du.Status.SnapshotID == v.SnapshotID {
			v.NodeOS = du.Status.NodeOS
			v.judge()
		}
	}
	return nil
}

// nativeSnapshot is one entry of -volumesnapshots.json.gz.
type nativeSnapshot struct {
	Spec struct {
		PersistentVolumeName string `json:"persistentVolumeName"`
	} `json:"spec"`
	Status struct {
		ProviderSnapshotID string `json:"providerSnapshotID"`
		Phase              string `json:"phase"`
	} `json:"status"`
}

// csiVolumeSnapshot and csiSnapshotContent are the parts of the -csi-* files (up to Velero 1.16) read here.
type csiVolumeSnapshot struct {
	Metadata struct {
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Source struct {
			PVC string `json:"persistentVolumeClaimName"`
		} `json:"source"`
	} `json:"spec"`
	Status *struct {
		Content string `json:"boundVolumeSnapshotContentName"`
	} `json:"status"`
}

type csiSnapshotContent struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Driver string `json:"driver"`
	} `json:"spec"`
	Status *struct {
		Handle *string `json:"snapshotHandle"`
	} `json:"status"`
}

// fromSnapshots makes volumes of the snapshots kept outside the bucket (never restorable here).
func fromSnapshots(native []nativeSnapshot, vss []csiVolumeSnapshot, vscs []csiSnapshotContent) []Volume {
	var out []Volume
	for _, n := range native {
		v := Volume{PV: n.Spec.PersistentVolumeName, Method: MethodNativeSnapshot, SnapshotHandle: n.Status.ProviderSnapshotID}
		v.judge()
		out = append(out, v)
	}
	contents := map[string]csiSnapshotContent{}
	for _, c := range vscs {
		contents[c.Metadata.Name] = c
	}
	for _, s := range vss {
		v := Volume{Namespace: s.Metadata.Namespace, PVC: s.Spec.Source.PVC, Method: MethodCSISnapshot}
		if s.Status != nil {
			if c, ok := contents[s.Status.Content]; ok {
				v.Driver = c.Spec.Driver
				if c.Status != nil && c.Status.Handle != nil {
					v.SnapshotHandle = *c.Status.Handle
				}
			}
		}
		v.judge()
		out = append(out, v)
	}
	return out
}
