package velero

import "fmt"

// volumeInfo is one entry of <name>-volumeinfo.json.gz (Velero 1.13 and later, its
// internal/volume.BackupVolumeInfo).
type volumeInfo struct {
	PVCName           string `json:"pvcName"`
	PVCNamespace      string `json:"pvcNamespace"`
	PVName            string `json:"pvName"`
	BackupMethod      string `json:"backupMethod"` // PodVolumeBackup, CSISnapshot, NativeSnapshot
	SnapshotDataMoved bool   `json:"snapshotDataMoved"`
	Skipped           bool   `json:"skipped"`
	SkippedReason     string `json:"skippedReason"`
	Result            string `json:"result"` // succeeded, failed
	CSISnapshotInfo   *struct {
		SnapshotHandle string `json:"snapshotHandle"`
		Size           int64  `json:"size"`
		Driver         string `json:"driver"`
	} `json:"csiSnapshotInfo"`
	SnapshotDataMovementInfo *struct {
		DataMover      string `json:"dataMover"`
		UploaderType   string `json:"uploaderType"`
		SnapshotHandle string `json:"snapshotHandle"`
		Size           int64  `json:"size"`
		Phase          string `json:"Phase"` // Velero writes the field without a JSON name
	} `json:"snapshotDataMovementInfo"`
	NativeSnapshotInfo *struct {
		SnapshotHandle string `json:"snapshotHandle"`
		Phase          string `json:"Phase"`
	} `json:"nativeSnapshotInfo"`
	PVBInfo *struct {
		SnapshotHandle string `json:"snapshotHandle"`
		Size           int64  `json:"size"`
		UploaderType   string `json:"uploaderType"`
		VolumeName     string `json:"volumeName"`
		PodName        string `json:"podName"`
		PodNamespace   string `json:"podNamespace"`
		Phase          string `json:"Phase"`
	} `json:"pvbInfo"`
}

// fromVolumeInfo turns the volumeinfo entries into volumes.
func fromVolumeInfo(infos []volumeInfo) ([]Volume, error) {
	out := make([]Volume, 0, len(infos))
	for i, in := range infos {
		v := Volume{Namespace: in.PVCNamespace, PVC: in.PVCName, PV: in.PVName, Skipped: in.Skipped, SkippedReason: in.SkippedReason}
		if in.Result == "failed" {
			v.Phase = "Failed"
		}
		switch {
		case in.BackupMethod == "PodVolumeBackup" && in.PVBInfo != nil:
			p := in.PVBInfo
			v.Method, v.Uploader, v.SnapshotID, v.Size = MethodFSBackup, p.UploaderType, p.SnapshotHandle, p.Size
			v.Pod, v.PodVolume = p.PodName, p.VolumeName
			if v.Namespace == "" {
				v.Namespace = p.PodNamespace
			}
			setPhase(&v, p.Phase)
			v.Empty = v.Phase == "Completed" && v.SnapshotID == ""
		case in.BackupMethod == "CSISnapshot" && in.SnapshotDataMoved && in.SnapshotDataMovementInfo != nil:
			d := in.SnapshotDataMovementInfo
			v.Method, v.DataMover, v.Uploader, v.SnapshotID, v.Size = MethodDataMover, d.DataMover, d.UploaderType, d.SnapshotHandle, d.Size
			if v.DataMover == "" {
				v.DataMover = "velero" // Velero: "" means its own
			}
			if in.CSISnapshotInfo != nil {
				v.Driver = in.CSISnapshotInfo.Driver
			}
			setPhase(&v, d.Phase)
		case in.BackupMethod == "CSISnapshot":
			v.Method = MethodCSISnapshot
			if c := in.CSISnapshotInfo; c != nil {
				v.SnapshotHandle, v.Driver, v.Size = c.SnapshotHandle, c.Driver, c.Size
			}
		case in.BackupMethod == "NativeSnapshot":
			v.Method = MethodNativeSnapshot
			if n := in.NativeSnapshotInfo; n != nil {
				v.SnapshotHandle = n.SnapshotHandle
			}
		case in.Skipped:
			v.Method = Method(in.BackupMethod)
		default:
			return nil, fmt.Errorf("volumeinfo entry %d (%s/%s): backup method %q without its details: %w", i, in.PVCNamespace, in.PVCName, in.BackupMethod, ErrUnreadable)
		}
		v.judge()
		out = append(out, v)
	}
	sortVolumes(out)
	return out, nil
}

// setPhase records Velero's phase unless the result already said Failed.
func setPhase(v *Volume, phase string) {
	if v.Phase == "" {
		v.Phase = phase
	}
}
