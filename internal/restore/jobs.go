package restore

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"k8s.io/apimachinery/pkg/types"
)

// RunningJobs says what happens to Jobs that were running when the backup was taken.
type RunningJobs string

// Running-job policies.
const (
	// RunningSuspend restores them with spec.suspend=true: the Job is back, and nothing runs
	// until the user resumes it, knowing what its volumes now hold.
	RunningSuspend RunningJobs = "suspend"
	RunningRestore RunningJobs = "restore" // as they were: they start again from the beginning
	RunningSkip    RunningJobs = "skip"    // not restored
)

// ParseRunningJobs checks a --running-jobs value.
func ParseRunningJobs(s string) (RunningJobs, error) {
	switch p := RunningJobs(s); p {
	case RunningSuspend, RunningRestore, RunningSkip:
		return p, nil
	}
	return "", fmt.Errorf("--running-jobs=%q: use suspend, restore or skip", s)
}

// finished returns how a Job or Pod ended ("Complete", "Failed", "Succeeded"), or "" if it had
// not ended when it was backed up. It reads status, so it runs before sanitising.
func finished(o *unstructured.Unstructured, job bool) string {
	if !job {
		phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
		if phase == "Succeeded" || phase == "Failed" {
			return phase
		}
		return ""
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if t, _ := cm["type"].(string); (t == "Complete" || t == "Failed") && cm["status"] == "True" {
			return t
		}
	}
	return ""
}

// suspended reports whether a Job was suspended when it was backed up (it ran nothing then, and
// is restored as it was).
func suspended(o *unstructured.Unstructured) bool {
	s, _, _ := unstructured.NestedBool(o.Object, "spec", "suspend")
	return s
}

// jobDecision returns, for a Job or Pod, why it is not restored (skip) or what the user should
// know about restoring it (note).
func (r *run) jobDecision(e *entry) (skip, note string) {
	job := e.gr == grJob
	if !job && e.gr != grPod {
		return "", ""
	}
	kind := "Pod"
	if job {
		kind = "Job"
	}
	if how := finished(e.obj, job); how != "" {
		if !r.cfg.IncludeFinishedJobs {
			return fmt.Sprintf("finished %s (%s): restoring it would run it again; --include-finished-jobs restores it", kind, how), ""
		}
		return "", fmt.Sprintf("finished (%s) at backup time: it runs again (--include-finished-jobs)", how)
	}
	if !job || suspended(e.obj) {
		return "", ""
	}
	switch r.cfg.RunningJobs {
	case RunningSkip:
		return "running at backup time (--running-jobs=skip)", ""
	case RunningRestore:
		return "", "running at backup time: it starts again from the beginning (--running-jobs=restore)"
	}
	e.suspend = true
	return "", fmt.Sprintf("running at backup time: restored suspended; resume it with kubectl patch job %s -n %s -p '{\"spec\":{\"suspend\":false}}' (--running-jobs)", e.obj.GetName(), r.targetNamespace(e))
}

func (r *run) targetNamespace(e *entry) string {
	return r.cfg.NamespaceMapping.Lookup(e.key.Namespace)
}

// decideJobs leaves out finished Jobs and Pods and, with --running-jobs=skip, running Jobs,
// unless their controller (a CronJob, a Job) is restored and recreates what it needs. It returns
// the Jobs left out, whose Pods go with them, and takes them out of inSet.
func (r *run) decideJobs(entries []*entry, inSet map[types.UID]*entry) map[types.UID]*entry {
	notRestored := map[types.UID]*entry{}
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		if ref := leftToController(e); ref != nil && inSet[ref.UID] != nil {
			continue
		}
		if e.skip, e.note = r.jobDecision(e); e.skip != "" && e.oldUID != "" {
			delete(inSet, e.oldUID)
			notRestored[e.oldUID] = e
		}
	}
	return notRestored
}
