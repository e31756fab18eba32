package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

const (
	labelEnforce = "pod-security.kubernetes.io/enforce"
	// maxAdmissionNamespaces bounds the dry runs when every namespace is in scope.
	maxAdmissionNamespaces = 50
)

// MoverPod is the pod of the mover Job the plugin would create in ns: the same spec (security
// context, resources, image), so admission judges what a backup would really submit.
func MoverPod(mc *volumes.MoverConfig, ns, op string) *corev1.Pod {
	t := volumes.Task{Backup: "doctor", Op: op, Namespace: ns, SourceNamespace: ns, PVC: "doctor-check", Run: "check"}
	job := t.JobSpec(mc, "doctor-check", "", volumes.Placement{})
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pvb-doctor-", Namespace: ns, Labels: job.Spec.Template.Labels},
		Spec:       job.Spec.Template.Spec,
	}
}

func checkAdmission(ctx context.Context, d *Deps, cfg *Config) []Result {
	if cfg.MoverErr != nil {
		return []Result{warn("mover", cfg.MoverErr.Error(), "")}
	}
	nss := cfg.Namespaces
	if cfg.AllNamespaces {
		list, err := d.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return []Result{warn("mover admission", "list namespaces: "+err.Error(), "")}
		}
		nss = nil
		for _, n := range list.Items {
			if len(nss) < maxAdmissionNamespaces {
				nss = append(nss, n.Name)
			}
		}
	}
	return forEach(nss, 4, func(ns string) []Result { return admitMover(ctx, d, cfg, ns) })
}

// admitMover submits the mover pod to ns as a server-side dry run: Pod Security, ResourceQuota,
// LimitRange and webhooks judge it and nothing is stored. Without the right to create pods it
// falls back to the namespace's labels and quotas.
func admitMover(ctx context.Context, d *Deps, cfg *Config, ns string) []Result {
	psCheck, quotaCheck := "pod security in "+ns, "resource quota in "+ns
	nsObj, err := d.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return []Result{ok(psCheck, "namespace "+ns+" does not exist yet: a restore creates it with the backup's labels")}
	}
	level := ""
	if err == nil {
		level = nsObj.Labels[labelEnforce]
	}
	pod := MoverPod(&cfg.Mover, ns, cfg.MoverOp)
	quotas, qerr := d.Kube.CoreV1().ResourceQuotas(ns).List(ctx, metav1.ListOptions{})
	quota := func() Result {
		if qerr != nil {
			return warn(quotaCheck, "cannot read ResourceQuotas: "+qerr.Error(), "")
		}
		return judgeQuotas(quotaCheck, quotas.Items, pod)
	}
	_, err = d.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	what := moverKind(&cfg.Mover)
	switch {
	case err == nil:
		return []Result{ok(psCheck, fmt.Sprintf("the %s is admitted (enforce=%s)", what, orNotSet(level))), quota()}
	case apierrors.IsForbidden(err) && strings.Contains(msg, "PodSecurity"):
		return []Result{fail(psCheck, fmt.Sprintf("the %s is refused: %s", what, trimForbidden(msg)), psFix(&cfg.Mover)), quota()}
	case apierrors.IsForbidden(err) && (strings.Contains(msg, "exceeded quota") || strings.Contains(msg, "must specify")):
		r := quota()
		if r.Status == OK { // admission knows better than the arithmetic
			r = fail(quotaCheck, trimForbidden(msg), quotaFix)
		}
		return []Result{ok(psCheck, fmt.Sprintf("enforce=%s", orNotSet(level))), r}
	case apierrors.IsForbidden(err) && strings.Contains(msg, "cannot create resource"):
		return []Result{judgeLevel(psCheck, level, &cfg.Mover), quota()}
	}
	return []Result{fail("mover admission in "+ns, "a dry run of the "+what+" failed: "+trimForbidden(msg), "see the LimitRanges and admission webhooks of "+ns)}
}

func moverKind(mc *volumes.MoverConfig) string {
	if mc.Privileged {
		return "privileged mover pod (root, CHOWN, DAC_OVERRIDE, FOWNER, FSETID)"
	}
	return "non-root mover pod"
}

func psFix(mc *volumes.MoverConfig) string {
	if mc.Privileged {
		return "run the mover without --mover-privileged (it then runs as --mover-run-as UID, which must own the files), or label the namespace " + labelEnforce + "=baseline"
	}
	return "label the namespace " + labelEnforce + "=restricted or weaker"
}

// judgeLevel evaluates the mover against the namespace's enforce label, for callers that cannot
// dry-run pods: the mover is restricted-compliant unless privileged, which baseline admits.
func judgeLevel(check, level string, mc *volumes.MoverConfig) Result {
	if level == "restricted" && mc.Privileged {
		return fail(check, "namespace enforces restricted and the "+moverKind(mc)+" needs baseline (judged from the namespace's labels: the caller cannot dry-run pods)", psFix(mc))
	}
	return ok(check, fmt.Sprintf("the %s fits enforce=%s (judged from the namespace's labels: the caller cannot dry-run pods)", moverKind(mc), orNotSet(level)))
}

func orNotSet(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

// trimForbidden keeps the admission's reason from `pods "x" is forbidden: reason`.
func trimForbidden(msg string) string {
	if i := strings.Index(msg, "is forbidden: "); i >= 0 {
		return msg[i+len("is forbidden: "):]
	}
	return msg
}

const quotaFix = "raise the quota, or lower --mover-cpu-request/--mover-memory-request/--mover-memory-limit"

// podNeeds is what one mover pod and its objects take from a quota.
func podNeeds(pod *corev1.Pod) (map[corev1.ResourceName]resource.Quantity, map[corev1.ResourceName]bool) {
	need := map[corev1.ResourceName]resource.Quantity{}
	hasLimit := map[corev1.ResourceName]bool{}
	add := func(name corev1.ResourceName, q resource.Quantity) {
		cur := need[name]
		cur.Add(q)
		need[name] = cur
	}
	for _, c := range pod.Spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[r]; ok {
				add(r, q)
				add("requests."+r, q)
			}
			if q, ok := c.Resources.Limits[r]; ok {
				add("limits."+r, q)
				hasLimit[r] = true
			}
		}
	}
	one := resource.MustParse("1")
	for _, n := range []corev1.ResourceName{"pods", "count/pods", "count/jobs.batch", "secrets", "count/secrets"} {
		need[n] = one
	}
	return need, hasLimit
}

// judgeQuotas checks what is left of each quota against one mover pod.
func judgeQuotas(check string, quotas []corev1.ResourceQuota, pod *corev1.Pod) Result {
	if len(quotas) == 0 {
		return ok(check, "no ResourceQuota")
	}
	need, hasLimit := podNeeds(pod)
	var problems, fits []string
	for _, q := range quotas {
		if len(q.Spec.Scopes) > 0 || q.Spec.ScopeSelector != nil {
			fits = append(fits, q.Name+" (scoped: not evaluated)")
			continue
		}
		hard := q.Status.Hard
		if hard == nil {
			hard = q.Spec.Hard
		}
		for _, name := range sortedResourceNames(hard) {
			h := hard[name]
			if strings.HasPrefix(string(name), "limits.") && !hasLimit[corev1.ResourceName(strings.TrimPrefix(string(name), "limits."))] {
				problems = append(problems, fmt.Sprintf("ResourceQuota %s limits %s but the mover sets no %s limit", q.Name, name, strings.TrimPrefix(string(name), "limits.")))
				continue
			}
			n, ok := need[name]
			if !ok {
				continue
			}
			free := h.DeepCopy()
			free.Sub(q.Status.Used[name])
			if n.Cmp(free) > 0 {
				problems = append(problems, fmt.Sprintf("ResourceQuota %s: %s: the mover needs %s, %s of %s free", q.Name, name, n.String(), free.String(), h.String()))
			}
		}
		fits = append(fits, q.Name)
	}
	if len(problems) > 0 {
		return fail(check, strings.Join(problems, "; "), quotaFix)
	}
	return ok(check, "the mover fits ResourceQuota "+strings.Join(fits, ", "))
}

func sortedResourceNames(l corev1.ResourceList) []corev1.ResourceName {
	m := map[string]bool{}
	for k := range l {
		m[string(k)] = true
	}
	var out []corev1.ResourceName
	for _, k := range sortedNames(m) {
		out = append(out, corev1.ResourceName(k))
	}
	return out
}

// checkScheduling looks for a node the mover pod fits on: Ready, schedulable, no taint it does not
// tolerate, allocatable CPU and memory at least its requests (other pods' requests aside).
func checkScheduling(ctx context.Context, d *Deps, cfg *Config) []Result {
	const check = "mover scheduling"
	if cfg.MoverErr != nil {
		return nil
	}
	nodes, err := d.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn(check, "cannot list nodes: "+err.Error(), "")}
	}
	var fit []string
	var why []string
	for _, n := range nodes.Items {
		if reason := unfit(&n, cfg.Mover.Requests); reason != "" {
			why = append(why, n.Name+": "+reason)
			continue
		}
		fit = append(fit, n.Name)
	}
	if len(fit) == 0 {
		if len(why) == 0 {
			why = []string{"the cluster has no nodes"}
		}
		return []Result{fail(check, "no node can run the mover: "+strings.Join(why, "; "), "free or add a node, or lower --mover-cpu-request/--mover-memory-request")}
	}
	return []Result{ok(check, fmt.Sprintf("%s can run the mover (%s)", ofAll(len(fit), len(nodes.Items), "node", "nodes"), strings.Join(first(fit, 3), ", ")))}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}

func unfit(n *corev1.Node, req corev1.ResourceList) string {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	switch {
	case !ready:
		return "not Ready"
	case n.Spec.Unschedulable:
		return "cordoned"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return fmt.Sprintf("taint %s=%s:%s", t.Key, t.Value, t.Effect)
		}
	}
	for name, q := range req {
		if a, ok := n.Status.Allocatable[name]; ok && q.Cmp(a) > 0 {
			return fmt.Sprintf("allocatable %s %s < the mover's request %s", name, a.String(), q.String())
		}
	}
	return ""
}
