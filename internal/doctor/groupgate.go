package doctor

import (
	"context"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// groupGate is the snapshot controller's CSIVolumeGroupSnapshot feature gate (beta in
// external-snapshotter v8, off by default): without it the controller leaves VolumeGroupSnapshots
// without a status.
const groupGate = "CSIVolumeGroupSnapshot"

// gateState is what the snapshot-controller pods' command lines say about the gate: the pods
// that turn it on, those that turn it off or do not name it.
func gateState(pods []corev1.Pod) (on, off []string) {
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			if !strings.Contains(c.Name+" "+c.Image, "snapshot-controller") {
				continue
			}
			name := p.Namespace + "/" + p.Name
			if gateOn(append(append([]string{}, c.Command...), c.Args...)) {
				on = append(on, name)
			} else {
				off = append(off, name)
			}
		}
	}
	sort.Strings(on)
	sort.Strings(off)
	return on, off
}

// gateOn reads --feature-gates (as one argument with "=" or followed by its value; the last
// setting wins, as in Kubernetes' flag parsing).
func gateOn(args []string) bool {
	on := false
	for i, a := range args {
		var v string
		switch {
		case strings.HasPrefix(a, "--feature-gates="):
			v = strings.TrimPrefix(a, "--feature-gates=")
		case a == "--feature-gates" && i+1 < len(args):
			v = args[i+1]
		default:
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
			if k == groupGate {
				on = strings.EqualFold(val, "true")
			}
		}
	}
	return on
}

// checkGroupGate adds to the group check what can be seen of the controller's feature gate: a
// controller pod without it makes groups fail (warn, served v1beta2); no pod in sight (a
// controller outside the cluster, or no right to list pods) is said as unknown.
func checkGroupGate(ctx context.Context, d *Deps, version string, r Result) Result {
	pods, err := controllerPods(ctx, d)
	on, off := gateState(pods)
	switch {
	case len(off) > 0 && version != "v1":
		return warn(r.Check, r.Detail+"; but snapshot-controller "+strings.Join(off, ", ")+" runs without --feature-gates="+groupGate+"=true: its VolumeGroupSnapshots would get no status and every group backup would wait --timeout",
			"add --feature-gates="+groupGate+"=true to the snapshot-controller and to the drivers' csi-snapshotter sidecars, or leave claims ungrouped")
	case len(on) > 0:
		r.Detail += "; snapshot-controller " + strings.Join(on, ", ") + " runs with " + groupGate + "=true"
	case err != nil || len(pods) == 0:
		r.Detail += "; whether the snapshot controller runs with --feature-gates=" + groupGate + "=true cannot be seen (no controller pod found): a group it ignores fails after --timeout, naming the gate"
	}
	return r
}
