package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// volumeTypes are the names Velero's volumeTypes condition knows: PersistentVolume sources and pod
// volume sources. Only PVs are backed up here, so pod-only types (emptyDir, configMap, ...) are
// accepted, as Velero accepts them, and match no claim.
var volumeTypes = []string{
	"awsAzureDisk", "awsElasticBlockStore", "azureDisk", "azureFile", "cinder", "cephfs", "configMap", "csi",
	"downwardAPI", "emptyDir", "ephemeral", "fc", "flocker", "flexVolume", "gitRepo", "glusterfs",
	"gcePersistentDisk", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk", "portworxVolume",
	"projected", "quobyte", "rbd", "scaleIO", "secret", "storageOS", "vsphereVolume",
}

// knownVolumeType compares without case: Velero's own documentation writes "configmap".
func knownVolumeType(t string) bool {
	for _, k := range volumeTypes {
		if strings.EqualFold(k, t) {
			return true
		}
	}
	return false
}

func matchVolumeType(want []string, pv *corev1.PersistentVolume) bool {
	got := volumeType(pv)
	for _, w := range want {
		if got != "" && strings.EqualFold(w, got) {
			return true
		}
	}
	return false
}

// volumeType names the source of a PV as Velero does.
func volumeType(pv *corev1.PersistentVolume) string {
	if pv == nil {
		return ""
	}
	s := pv.Spec.PersistentVolumeSource
	for _, t := range []struct {
		set  bool
		name string
	}{
		{s.AWSElasticBlockStore != nil, "awsElasticBlockStore"}, {s.AzureDisk != nil, "azureDisk"},
		{s.AzureFile != nil, "azureFile"}, {s.CephFS != nil, "cephfs"}, {s.Cinder != nil, "cinder"},
		{s.CSI != nil, "csi"}, {s.FC != nil, "fc"}, {s.Flocker != nil, "flocker"}, {s.FlexVolume != nil, "flexVolume"},
		{s.GCEPersistentDisk != nil, "gcePersistentDisk"}, {s.Glusterfs != nil, "glusterfs"}, {s.HostPath != nil, "hostPath"},
		{s.ISCSI != nil, "iscsi"}, {s.Local != nil, "local"}, {s.NFS != nil, "nfs"},
		{s.PhotonPersistentDisk != nil, "photonPersistentDisk"}, {s.PortworxVolume != nil, "portworxVolume"},
		{s.Quobyte != nil, "quobyte"}, {s.RBD != nil, "rbd"}, {s.ScaleIO != nil, "scaleIO"},
		{s.StorageOS != nil, "storageOS"}, {s.VsphereVolume != nil, "vsphereVolume"},
	} {
		if t.set {
			return t.name
		}
	}
	return ""
}
