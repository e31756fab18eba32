package schedule

import (
	"slices"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// Object is one printed object and the comment above it.
type Object struct {
	Comment string
	Object  runtime.Object
}

func (c Config) meta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
		LabelSchedule: c.Label(), "app.kubernetes.io/name": "kubectl-pvbackup", "app.kubernetes.io/component": "schedule"}}
}

// Objects are the schedule's objects in the order to apply them: the ServiceAccount, its
// ClusterRole and binding, a Role and binding per backed-up namespace, the CronJob.
func (c Config) Objects() []Object {
	cluster, namespaced := c.Rules()
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: c.meta(c.ServiceAccount(), c.Namespace)}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: c.ServiceAccount(), Namespace: c.Namespace}}
	out := []Object{{"The identity the runs have. It holds no secret.", sa}}
	scope := "the cluster-scoped objects create reads and changes (namespaces, PVs, snapshot classes and contents)"
	if c.ClusterWide {
		scope = "every right create and prune need, in every namespace"
	}
	out = append(out,
		Object{"What the runs may do cluster-wide: " + scope + ".", &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: c.meta(c.roleName(), ""), Rules: cluster}},
		Object{"", &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: c.meta(c.roleName(), ""), Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c.roleName()}}})
	if !c.ClusterWide {
		nss := append([]string(nil), c.Namespaces...)
		sort.Strings(nss)
		for _, ns := range nss {
			out = append(out,
				Object{"What the runs may do in namespace " + ns + ": " + c.roleSummary() + ".",
					&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: c.meta(c.roleName(), ns), Rules: namespaced}},
				Object{"", &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
					ObjectMeta: c.meta(c.roleName(), ns), Subjects: subject,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: c.roleName()}}})
		}
	}
	if c.PullSecret != "" && slices.Contains(c.Needs, "volumes") { // only movers are given it
		out = append(out, c.pullSecretRole(subject)...)
	}
	return append(out, Object{c.cronComment(), c.cronJob()})
}

// pullSecretRule lets create read the pull Secret (that one only) to copy it to the movers.
func (c Config) pullSecretRule() rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{c.PullSecret}, Verbs: []string{"get"}}
}

// pullSecretRole is a Role of its own in the CronJob's namespace (which may also be a backed-up
// one, with a Role of that name) for the pull Secret, and its binding.
func (c Config) pullSecretRole(subject []rbacv1.Subject) []Object {
	name := c.roleName() + ":pull-secret"
	return []Object{
		{"Create reads the pull Secret " + c.PullSecret + " (only that one) to copy it into the movers' namespaces for each run.",
			&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: c.meta(name, c.Namespace), Rules: []rbacv1.PolicyRule{c.pullSecretRule()}}},
		{"", &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: c.meta(name, c.Namespace), Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}},
	}
}

// roleSummary says in words what a backed-up namespace's Role allows.
func (c Config) roleSummary() string {
	parts := []string{"list every type of object (create backs up all it is not told to leave out)"}
	for _, n := range c.Needs {
		switch n {
		case "volumes":
			parts = append(parts, "run and follow the mover Jobs and their Secrets")
		case "snapshots":
			parts = append(parts, "take VolumeSnapshots and make temporary PVCs from them")
		case "hooks":
			parts = append(parts, "exec the pre/post hooks in pods")
		case "prune":
			parts = append(parts, "delete the VolumeSnapshots kept by snapshot mode")
		}
	}
	return strings.Join(parts, "; ")
}

func (c Config) cronComment() string {
	runs := "create"
	if c.PruneArgs != nil {
		runs = "create, then prune (only when create exited 0)"
	}
	return "The schedule: " + runs + ", from the mover image (it holds the plugin), one run at a time."
}

func (c Config) cronJob() *batchv1.CronJob {
	meta := c.meta(c.Name, c.Namespace)
	meta.Annotations = map[string]string{AnnotationNamespaces: strings.Join(c.Namespaces, ","), AnnotationNeeds: strings.Join(c.Needs, ","), AnnotationToolVersion: c.ToolVersion}
	if c.ClusterWide {
		meta.Annotations[AnnotationNamespaces] = "*"
	}
	podMeta := metav1.ObjectMeta{Labels: map[string]string{LabelSchedule: c.Label()}}
	job := batchv1.JobSpec{BackoffLimit: ptr.To(int32(0)), ActiveDeadlineSeconds: ptr.To(int64(c.Deadline.Seconds())),
		Template: corev1.PodTemplateSpec{ObjectMeta: podMeta, Spec: c.podSpec()}}
	cj := &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}, ObjectMeta: meta,
		Spec: batchv1.CronJobSpec{Schedule: c.Cron, ConcurrencyPolicy: batchv1.ForbidConcurrent, StartingDeadlineSeconds: ptr.To(int64(3600)),
			SuccessfulJobsHistoryLimit: ptr.To(c.HistoryLimit), FailedJobsHistoryLimit: ptr.To(c.HistoryLimit),
			JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: podMeta, Spec: job}}}
	if c.TimeZone != "" {
		cj.Spec.TimeZone = ptr.To(c.TimeZone)
	}
	return cj
}

// podSpec runs create as an init container and prune after it: no shell in the image to chain
// them, and a failed create (exit 1 or 2) fails the Job before prune could remove anything.
func (c Config) podSpec() corev1.PodSpec {
	spec := corev1.PodSpec{ServiceAccountName: c.ServiceAccount(), RestartPolicy: corev1.RestartPolicyNever,
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(UID)), RunAsGroup: ptr.To(int64(UID)),
			FSGroup: ptr.To(int64(UID)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}
	if c.PullSecret != "" {
		spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: c.PullSecret}}
	}
	if c.GCPCredentials {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: c.Secret, Items: []corev1.KeyToPath{{Key: GCPCredentialsKey, Path: GCPCredentialsKey}}, DefaultMode: ptr.To(int32(0o440))}}})
	}
	create := c.container("create", c.CreateArgs)
	if c.PruneArgs == nil {
		spec.Containers = []corev1.Container{create}
		return spec
	}
	spec.InitContainers = []corev1.Container{create}
	spec.Containers = []corev1.Container{c.container("prune", c.PruneArgs)}
	return spec
}

func (c Config) container(name string, args []string) corev1.Container {
	ct := corev1.Container{Name: name, Image: c.Image, ImagePullPolicy: c.PullPolicy, Command: []string{BinaryPath}, Args: args,
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: c.Secret}}}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		// Kopia's configuration and cache, and the plugin's temporary files.
		VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		// The container's last lines of output are what `kubectl describe` shows of a failed run.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError}
	if c.GCPCredentials {
		ct.VolumeMounts = append(ct.VolumeMounts, corev1.VolumeMount{Name: "credentials", MountPath: CredentialsDir, ReadOnly: true})
		ct.Env = []corev1.EnvVar{{Name: "GOOGLE_APPLICATION_CREDENTIALS", Value: CredentialsDir + "/" + GCPCredentialsKey}}
	}
	return ct
}
