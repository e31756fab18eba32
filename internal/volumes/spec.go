package volumes

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// Paths inside the mover container.
const (
	mountTmp = "/tmp"
	// mountData is inside the writable /tmp emptyDir: Kopia's restore writes a placeholder next to
	// its target (<target>.kopia-entry), and the root filesystem is read-only.
	mountData = mountTmp + "/data"
	// mountSource is where a restore from a kept VolumeSnapshot mounts the volume made from it.
	mountSource = "/var/run/pvbackup/source"
	// deviceData and deviceSource are where a block volume's mover gets the claims' devices
	// (volumeDevices) instead of mountData and mountSource.
	deviceData    = "/dev/pvbackup-data"
	deviceSource  = "/dev/pvbackup-source"
	mountCreds    = "/var/run/pvbackup/credentials"
	passwordKey   = mover.SecretKeyPassword
	containerName = mover.ContainerName
)

// CredentialEnv are the environment variables the plugin passes to movers when it has them: the
// ones the storage SDKs behind gocloud read.
var CredentialEnv = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE",
	"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_DOMAIN",
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
	"GOOGLE_CLOUD_PROJECT",
}

// SettingsEnv are store settings that are not credentials: with --mover-credentials=identity they
// reach the movers as plain environment variables.
var SettingsEnv = []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_DOMAIN", "GOOGLE_CLOUD_PROJECT"}

// AzureIdentityLabel makes Azure Workload Identity's webhook give a pod its ServiceAccount's
// federated token and client ID; elsewhere it means nothing.
const AzureIdentityLabel = "azure.workload.identity/use"

// CredentialFiles are variables naming files whose content goes into the Secret (mounted, and the
// variable pointed at the mounted copy).
var CredentialFiles = []string{"GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE"}

// runIDLen is the length of a Task's Run.
const runIDLen = 5

// NewRunID returns a random run ID of runIDLen characters.
func NewRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:runIDLen]
}

// objectName makes a DNS-1123 name from parts, at most 63 characters, unique by a hash.
func objectName(prefix string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	suffix := hex.EncodeToString(h[:])[:8]
	base := prefix + "-" + strings.Join(parts, "-")
	base = strings.ToLower(base)
	base = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, base)
	if max := 63 - 1 - len(suffix) - runIDLen; len(base) > max {
		base = base[:max]
	}
	return strings.TrimRight(base, "-") + "-" + suffix
}

// OpProbe is the Op of doctor's probe task (mover.OpProbe): engines name the mover's operations
// through volumes, which holds the plugin's side of the contract.
const OpProbe = mover.OpProbe

// Task is one volume's work: its identity and the names of its temporary objects.
type Task struct {
	Backup    string
	Op        string // "backup", "restore" or "probe" (doctor)
	Namespace string // where the claim and the temporary objects are
	// SourceNamespace selects the repository (differs from Namespace on a mapped restore).
	SourceNamespace string
	PVC             string
	// Run makes the names of one run unique, so events of an earlier run's objects of the same
	// backup and claim (a second restore, say) are never taken for this run's.
	Run string
	// RequireEmpty and SubPath are a restore's (mover.Invocation).
	RequireEmpty   bool
	SubPath        string
	Sync, DiffOnly bool
	// FromSnapshot, on a restore, is the kept VolumeSnapshot (in Namespace) to restore from
	// instead of a Kopia snapshot: a temporary claim is made from it and mounted read-only.
	FromSnapshot string
	// ProbeToken and ProbeVerify are doctor's probe's (mover.Invocation).
	ProbeToken  string
	ProbeVerify bool
	// Compression is a backup's (mover.Invocation).
	Compression string
	// GroupMember, on a backup, is the member VolumeSnapshot of a VolumeGroupSnapshot that cut the
	// claim: the temporary claim is made from it, and it is deleted with its group, not alone.
	GroupMember string
	// Block: the claims are volumeMode: Block; the mover maps their devices (volumeDevices) and
	// runs as root (see blockSecurity).
	Block bool
}

func (t Task) name(kind string) string {
	return objectName("pvb-"+kind, t.Backup, t.PVC) + t.Run
}

// Names of the temporary objects.
func (t Task) SnapshotName() string { return t.name("snap") }

// KeptSnapshotName is the VolumeSnapshot of snapshot mode, which outlives the backup.
func (t Task) KeptSnapshotName() string { return t.name("keep") }
func (t Task) TempPVCName() string      { return t.name("tmp") }
func (t Task) JobName() string          { return t.name(t.Op[:1]) } // pvb-b-... / pvb-r-...
func (t Task) SecretName() string       { return t.name("sec" + t.Op[:1]) }

// Labels are those of every temporary object of the task.
func (t Task) Labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelBackup: t.Backup, LabelOperation: t.Op, LabelSourcePVC: t.PVC}
}

func (t Task) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: t.Namespace, Labels: t.Labels()}
}

// SnapshotSpec is the VolumeSnapshot of the task's claim.
func (t Task) SnapshotSpec(class string, kept bool) *snapv1.VolumeSnapshot {
	m := t.meta(t.SnapshotName())
	if kept {
		m.Labels[LabelKept] = "true"
	}
	return &snapv1.VolumeSnapshot{
		ObjectMeta: m,
		Spec: snapv1.VolumeSnapshotSpec{
			Source:                  snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(t.PVC)},
			VolumeSnapshotClassName: ptr.To(class),
		},
	}
}

// TempPVCSpec is the temporary claim restored from the snapshot: the source's class (or its
// mapping), a size of at least the snapshot's restore size, read-only use by one pod.
func (t Task) TempPVCSpec(src *corev1.PersistentVolumeClaim, restoreSize *resource.Quantity, classMap map[string]string) *corev1.PersistentVolumeClaim {
	size := src.Spec.Resources.Requests[corev1.ResourceStorage]
	if q, ok := src.Status.Capacity[corev1.ResourceStorage]; ok && q.Cmp(size) > 0 {
		size = q
	}
	if restoreSize != nil && restoreSize.Cmp(size) > 0 {
		size = *restoreSize
	}
	class := src.Spec.StorageClassName
	if class != nil && classMap[*class] != "" {
		class = ptr.To(classMap[*class])
	}
	modes := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	for _, m := range src.Spec.AccessModes {
		if m == corev1.ReadWriteOncePod {
			modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}
		}
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: t.meta(t.TempPVCName()),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			StorageClassName: class,
			VolumeMode:       src.Spec.VolumeMode,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			DataSource:       &corev1.TypedLocalObjectReference{APIGroup: ptr.To(snapv1.GroupName), Kind: "VolumeSnapshot", Name: t.snapshotSource()},
		},
	}
}

// snapshotSource is the VolumeSnapshot the temporary claim is made from.
func (t Task) snapshotSource() string {
	if t.FromSnapshot != "" {
		return t.FromSnapshot
	}
	if t.GroupMember != "" {
		return t.GroupMember
	}
	return t.SnapshotName()
}

// SecretSpec is the temporary Secret: the password of the source namespace's repository alone
// (which opens nothing else), and the storage credentials unless the user's --mover-secret has them.
func (t Task) SecretSpec(c *MoverConfig) (*corev1.Secret, error) {
	s := &corev1.Secret{ObjectMeta: t.meta(t.SecretName()), Type: corev1.SecretTypeOpaque, Data: map[string][]byte{}}
	if c.RepoPassword != nil {
		pw, err := c.RepoPassword(t.SourceNamespace)
		if err != nil {
			return nil, fmt.Errorf("the repository password of namespace %s: %w", t.SourceNamespace, err)
		}
		s.Data[passwordKey] = []byte(pw)
	}
	if c.Secret != "" {
		return s, nil
	}
	for k, v := range c.Env {
		s.Data[k] = []byte(v)
	}
	for k, v := range c.Files {
		s.Data[mover.SecretFilePrefix+k] = v
	}
	return s, nil
}

// JobSpec is the mover Job. claim is the PVC it mounts (read-only for a backup); place is where
// it may run (place.go).
func (t Task) JobSpec(c *MoverConfig, claim, snapshotID string, place Placement) *batchv1.Job {
	readOnly := t.Op == "backup" || t.DiffOnly || t.ProbeVerify // a diff and the probe's read-back only read
	inv := t.invocation(c, snapshotID)
	env := moverEnv(inv, c.Settings)
	vols, mounts := t.claimVolumes(claim, readOnly)
	var devices []corev1.VolumeDevice
	if t.Block {
		mounts, devices = blockDevices(mounts)
	}
	if len(c.Files) > 0 && c.Secret == "" {
		vols, mounts, env = t.credentialFiles(c.Files, vols, mounts, env)
	}
	podSC, sc := t.securityContexts(c, readOnly)
	pod := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		ServiceAccountName:            c.ServiceAccount,
		ImagePullSecrets:              t.imagePullSecrets(c),
		AutomountServiceAccountToken:  ptr.To(c.ServiceAccount != ""),
		SecurityContext:               podSC,
		Affinity:                      place.affinity(),
		Tolerations:                   place.Tolerations,
		Volumes:                       vols,
		TerminationGracePeriodSeconds: ptr.To(int64(10)),
		EnableServiceLinks:            ptr.To(false),
		Containers: []corev1.Container{{
			Name:                     containerName,
			Image:                    c.Image,
			ImagePullPolicy:          c.PullPolicy,
			Args:                     inv.Args(),
			Env:                      env,
			EnvFrom:                  t.envFrom(c),
			VolumeMounts:             mounts,
			VolumeDevices:            devices,
			SecurityContext:          sc,
			Resources:                corev1.ResourceRequirements{Requests: c.Requests, Limits: c.Limits},
			TerminationMessagePath:   corev1.TerminationMessagePathDefault,
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}},
	}
	return t.job(c, pod)
}

// invocation is what the mover is told: the contract's (mover.Invocation); only the paths are
// the Job's.
func (t Task) invocation(c *MoverConfig, snapshotID string) mover.Invocation {
	backup := t.Op == "backup"
	inv := mover.Invocation{Op: t.Op, Location: c.Location, SourceNamespace: t.SourceNamespace, PVC: t.PVC, Backup: t.Backup,
		CacheDir: mountTmp, Dir: mountData, Snapshot: snapshotID, SkipOwners: !backup && !c.Privileged,
		RequireEmpty: t.RequireEmpty, SubPath: t.SubPath, Sync: t.Sync, DiffOnly: t.DiffOnly, Debug: c.Debug,
		ProbeToken: t.ProbeToken, ProbeVerify: t.ProbeVerify, ReadOnly: c.ReadOnlyRepository && t.Op == mover.OpRestore,
		Compression: t.Compression, UploadLimit: c.UploadLimit, DownloadLimit: c.DownloadLimit, Block: t.Block}
	if t.FromSnapshot != "" {
		inv.Snapshot, inv.FromDir = "", mountSource
	}
	if t.Block {
		inv.Dir = deviceData
		if t.FromSnapshot != "" {
			inv.FromDir = deviceSource
		}
	}
	return inv
}

// moverEnv is the invocation's environment, then the storage settings in key order.
func moverEnv(inv mover.Invocation, settings map[string]string) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, e := range inv.Env() {
		env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		env = append(env, corev1.EnvVar{Name: k, Value: settings[k]})
	}
	return env
}

// envFrom is the temporary Secret (the repository password, the storage credentials), after the
// user's Secret when there is one.
func (t Task) envFrom(c *MoverConfig) []corev1.EnvFromSource {
	envFrom := []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: t.SecretName()}}}}
	if c.Secret != "" {
		// The user's Secret brings the storage credentials; the temporary one, last so that it
		// wins, the repository password.
		envFrom = append([]corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: c.Secret}}}}, envFrom...)
	}
	return envFrom
}

// claimVolumes are the pod's volumes and the mover's mounts: the claim (data), a scratch
// directory (tmp) and, for a backup from a snapshot, the temporary claim (source).
func (t Task) claimVolumes(claim string, readOnly bool) ([]corev1.Volume, []corev1.VolumeMount) {
	mounts := []corev1.VolumeMount{
		{Name: "data", MountPath: mountData, ReadOnly: readOnly},
		{Name: "tmp", MountPath: mountTmp},
	}
	vols := []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if claim == "" {
		// No volume (doctor's probe of the movers' identity): the mover only reaches the location.
		vols[0].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		mounts[0].ReadOnly = false
	}
	if t.FromSnapshot != "" {
		vols = append(vols, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: t.TempPVCName(), ReadOnly: true}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: mountSource, ReadOnly: true})
	}
	return vols, mounts
}

// credentialFiles mounts the storage's credential files from the temporary Secret, each named
// by its variable in env.
func (t Task) credentialFiles(files map[string][]byte, vols []corev1.Volume, mounts []corev1.VolumeMount, env []corev1.EnvVar) ([]corev1.Volume, []corev1.VolumeMount, []corev1.EnvVar) {
	var items []corev1.KeyToPath
	for _, k := range slices.Sorted(maps.Keys(files)) {
		items = append(items, corev1.KeyToPath{Key: mover.SecretFilePrefix + k, Path: k})
		env = append(env, corev1.EnvVar{Name: k, Value: mountCreds + "/" + k})
	}
	vols = append(vols, corev1.Volume{Name: "credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: t.SecretName(), Items: items}}})
	mounts = append(mounts, corev1.VolumeMount{Name: "credentials", MountPath: mountCreds, ReadOnly: true})
	return vols, mounts, env
}

// securityContexts are the pod's and the mover container's: non-root, no privilege escalation,
// a read-only root, no capabilities, unless c asks for a privileged mover or another user.
func (t Task) securityContexts(c *MoverConfig, readOnly bool) (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	podSC := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		RunAsUser:      ptr.To(int64(DefaultMoverUID)),
		RunAsGroup:     ptr.To(int64(DefaultMoverUID)),
	}
	if c.RunAsUser != nil {
		podSC.RunAsUser, podSC.RunAsGroup = c.RunAsUser, c.RunAsUser
	}
	if c.FSGroup != nil {
		podSC.FSGroup = c.FSGroup
		podSC.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
	} else if !readOnly && !c.Privileged {
		// A new volume's root is usually root's: the kubelet gives it to the mover's group so a
		// non-root restore can write (read-only backup mounts are never re-owned).
		podSC.FSGroup = podSC.RunAsGroup
		podSC.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
	}
	if c.Privileged {
		podSC.RunAsNonRoot, podSC.RunAsUser, podSC.RunAsGroup = ptr.To(false), ptr.To(int64(0)), ptr.To(int64(0))
		sc.RunAsNonRoot = ptr.To(false)
		sc.Capabilities.Add = []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"}
		sc.Capabilities.Drop = []corev1.Capability{"ALL"}
	}
	if t.Block && !c.Privileged {
		blockSecurity(podSC, sc)
	}
	return podSC, sc
}

// job wraps the mover's pod in the Task's Job: no retry beyond c's, a deadline, removed after TTL.
func (t Task) job(c *MoverConfig, pod corev1.PodSpec) *batchv1.Job {
	podLabels := t.Labels()
	if c.Identity {
		podLabels = maps.Clone(podLabels)
		podLabels[AzureIdentityLabel] = "true"
	}
	return &batchv1.Job{
		ObjectMeta: t.meta(t.JobName()),
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(c.BackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(int64(c.ActiveDeadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To(int32(c.TTL.Seconds())),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       pod,
			},
		},
	}
}

// blockDevices turns the mounts of the claims (data, source) into devices of a block volume's
// mover; the other mounts stay.
func blockDevices(mounts []corev1.VolumeMount) ([]corev1.VolumeMount, []corev1.VolumeDevice) {
	var keep []corev1.VolumeMount
	var devices []corev1.VolumeDevice
	for _, m := range mounts {
		switch m.Name {
		case "data":
			devices = append(devices, corev1.VolumeDevice{Name: m.Name, DevicePath: deviceData})
		case "source":
			devices = append(devices, corev1.VolumeDevice{Name: m.Name, DevicePath: deviceSource})
		default:
			keep = append(keep, m)
		}
	}
	return keep, devices
}

// blockSecurity runs a block volume's mover as root (uid and gid 0), still without any
// capability, privilege escalation or writable root filesystem: the runtime creates the device
// node with the host device's owner and mode (root, 0600 or 0660 with group disk), which only
// its owner opens without CAP_DAC_OVERRIDE. Pod Security level baseline (restricted forbids
// root); containerd's device_ownership_from_security_context would allow a non-root mover.
func blockSecurity(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	pod.RunAsNonRoot, pod.RunAsUser, pod.RunAsGroup = ptr.To(false), ptr.To(int64(0)), ptr.To(int64(0))
	pod.FSGroup, pod.FSGroupChangePolicy = nil, nil
	c.RunAsNonRoot = ptr.To(false)
}

// describeClaim is "ns/name" for messages.
func describeClaim(ns, name string) string { return fmt.Sprintf("%s/%s", ns, name) }
