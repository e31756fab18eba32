package doctor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What `schedule print` puts on its CronJob (internal/schedule uses these names): the label doctor
// finds it by, the backed-up namespaces ("*": every one) and the needs of its runs.
const (
	ScheduleLabel            = "pvbackup.io/schedule"
	ScheduleNamespacesAnnot  = "pvbackup.io/schedule-namespaces"
	ScheduleNeedsAnnot       = "pvbackup.io/schedule-needs"
	SchedulePasswordKey      = "PVBACKUP_PASSWORD"
	maxSchedules             = 20
	scheduleRightsNamespaces = maxRightsNamespaces
)

// ScheduleSteps is the schedules check alone.
func ScheduleSteps() []Step { return []Step{{"schedules", checkSchedules}} }

// checkSchedules finds the schedules (CronJobs labelled ScheduleLabel) that concern the
// namespaces in scope (they run in one, or back one up, or back up every namespace), and checks
// for each that its ServiceAccount has every right its runs need and that its Secret is there.
//
// The rights are asked with a SubjectAccessReview per right, naming the ServiceAccount as the
// subject: the API server's own answer for that identity, without acting as it (impersonation
// would need the right to impersonate and a client per ServiceAccount, and a
// SelfSubjectAccessReview only speaks for the caller).
func checkSchedules(ctx context.Context, d *Deps, cfg *Config) []Result {
	jobs, err := findSchedules(ctx, d, cfg)
	if err != nil {
		return []Result{warn("schedules", "cannot list CronJobs: "+err.Error(), "")}
	}
	if len(jobs) > maxSchedules {
		jobs = jobs[:maxSchedules]
	}
	var out []Result
	for i := range jobs {
		out = append(out, checkSchedule(ctx, d, &jobs[i])...)
	}
	return out
}

func findSchedules(ctx context.Context, d *Deps, cfg *Config) ([]batchv1.CronJob, error) {
	opts := metav1.ListOptions{LabelSelector: ScheduleLabel}
	list, err := d.Kube.BatchV1().CronJobs("").List(ctx, opts)
	if err == nil {
		var out []batchv1.CronJob
		for _, cj := range list.Items {
			if inScope(&cj, cfg) {
				out = append(out, cj)
			}
		}
		return sortedJobs(out), nil
	}
	if !apierrors.IsForbidden(err) || cfg.AllNamespaces {
		return nil, err
	}
	var out []batchv1.CronJob
	for _, ns := range cfg.Namespaces {
		l, err := d.Kube.BatchV1().CronJobs(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
	}
	return sortedJobs(out), nil
}

// inScope: the CronJob runs in a namespace in scope, or backs one up (or every namespace).
func inScope(cj *batchv1.CronJob, cfg *Config) bool {
	if cfg.AllNamespaces {
		return true
	}
	for _, ns := range cfg.Namespaces {
		if cj.Namespace == ns {
			return true
		}
		for _, b := range splitList(cj.Annotations[ScheduleNamespacesAnnot]) {
			if b == ns || b == "*" {
				return true
			}
		}
	}
	return false
}

func sortedJobs(jobs []batchv1.CronJob) []batchv1.CronJob {
	sort.Slice(jobs, func(i, j int) bool {
		return jobs[i].Namespace+"/"+jobs[i].Name < jobs[j].Namespace+"/"+jobs[j].Name
	})
	return jobs
}

// checkSchedule checks one CronJob's ServiceAccount and Secret.
func checkSchedule(ctx context.Context, d *Deps, cj *batchv1.CronJob) []Result {
	name := "schedule " + cj.Namespace + "/" + cj.Name
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	sa := pod.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	user := "system:serviceaccount:" + cj.Namespace + ":" + sa
	needs := splitList(cj.Annotations[ScheduleNeedsAnnot])
	var out []Result
	if len(needs) == 0 {
		needs = []string{"create"}
		out = append(out, warn(name, "no "+ScheduleNeedsAnnot+" annotation: checked for every right create needs", "print the schedule again with kubectl pvbackup schedule print"))
	}
	cluster, namespaced := RightsFor(needs)
	j := judge{ask: subjectAsk(d, user, cj.Namespace), who: user, fix: func(ns string) string {
		return fmt.Sprintf("apply the output of kubectl pvbackup schedule print %s again (its ClusterRole and Roles), or grant them to ServiceAccount %s/%s", cj.Name, cj.Namespace, sa)
	}}
	out = append(out, j.rights(ctx, name+" (cluster)", "", cluster)...)
	nss := splitList(cj.Annotations[ScheduleNamespacesAnnot])
	if len(nss) == 1 && nss[0] == "*" {
		nss = []string{""}
	}
	if len(nss) > scheduleRightsNamespaces {
		nss = nss[:scheduleRightsNamespaces]
	}
	for _, ns := range nss {
		check := name + " in " + ns
		if ns == "" {
			check = name + " in all namespaces"
		}
		out = append(out, j.rights(ctx, check, ns, namespaced)...)
	}
	out = append(out, checkScheduleSecrets(ctx, d, name, cj.Namespace, pod)...)
	return append(out, checkSchedulePullSecrets(ctx, d, name, cj.Namespace, pod, j, slices.Contains(needs, "volumes") || slices.Contains(needs, "create"))...)
}

// maxPullSecrets bounds the imagePullSecrets of a CronJob doctor looks at.
const maxPullSecrets = 4

// checkSchedulePullSecrets checks the pod's imagePullSecrets (schedule print's
// --mover-pull-secret): each exists (else no run starts) and, when its runs move volume data,
// the ServiceAccount may get it (create copies it to the movers).
func checkSchedulePullSecrets(ctx context.Context, d *Deps, check, ns string, pod corev1.PodSpec, j judge, copied bool) []Result {
	var out []Result
	for i, ref := range pod.ImagePullSecrets {
		if i == maxPullSecrets {
			break
		}
		name := check + ": pull secret " + ref.Name
		if _, err := d.Kube.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			out = append(out, fail(name, fmt.Sprintf("Secret %s/%s does not exist: the runs cannot pull the mover image from a registry that wants credentials", ns, ref.Name),
				fmt.Sprintf("create it: kubectl -n %s create secret docker-registry %s --docker-server=... --docker-username=... --docker-password=...", ns, ref.Name)))
			continue
		}
		if !copied {
			continue
		}
		allowed, err := j.ask(ctx, &authzv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: ref.Name})
		switch {
		case err != nil:
			out = append(out, warn(name, "cannot ask whether "+j.who+" may get it: "+err.Error(), ""))
		case !allowed:
			out = append(out, fail(name, fmt.Sprintf("%s may not get Secret %s/%s: create cannot copy it to the movers, whose pulls then fail", j.who, ns, ref.Name), j.fix(ns)))
		default:
			out = append(out, ok(name, fmt.Sprintf("%s may get Secret %s/%s to copy it to the movers", j.who, ns, ref.Name)))
		}
	}
	return out
}

// subjectAsk asks for a ServiceAccount (SubjectAccessReview, with the groups every
// ServiceAccount of the namespace has).
func subjectAsk(d *Deps, user, namespace string) asker {
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	return func(ctx context.Context, ra *authzv1.ResourceAttributes) (bool, error) {
		res, err := d.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
			Spec: authzv1.SubjectAccessReviewSpec{ResourceAttributes: ra, User: user, Groups: groups}}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			return false, fmt.Errorf("you may not create SubjectAccessReviews to ask for %s: run doctor as a cluster admin", user)
		}
		return err == nil && res.Status.Allowed, err
	}
}

// checkScheduleSecrets checks that the Secrets the runs read exist and hold the password; a
// caller who may not read Secrets learns nothing here, and no value is ever shown.
func checkScheduleSecrets(ctx context.Context, d *Deps, check, ns string, pod corev1.PodSpec) []Result {
	seen := map[string]bool{}
	var out []Result
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef == nil || seen[ef.SecretRef.Name] {
				continue
			}
			name := ef.SecretRef.Name
			seen[name] = true
			s, err := d.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				out = append(out, fail(check+": secret", fmt.Sprintf("Secret %s/%s does not exist: every run fails before it starts", ns, name),
					fmt.Sprintf("create it as the CronJob's header says: kubectl -n %s create secret generic %s --from-env-file=pvbackup.env", ns, name)))
			case err != nil:
				continue // not allowed to read it: nothing to say
			case len(s.Data[SchedulePasswordKey]) == 0 && s.StringData[SchedulePasswordKey] == "":
				out = append(out, fail(check+": secret", fmt.Sprintf("Secret %s/%s has no %s: the runs have no password", ns, name, SchedulePasswordKey),
					"add the repository password to it under the key "+SchedulePasswordKey))
			default:
				out = append(out, ok(check+": secret", fmt.Sprintf("Secret %s/%s holds %s and %d other keys", ns, name, SchedulePasswordKey, len(s.Data)-1)))
			}
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
