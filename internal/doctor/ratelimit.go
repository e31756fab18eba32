package doctor

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// defaultAPIQPS is external-snapshotter's default --kube-api-qps (burst 10): the controller makes
// several requests per VolumeSnapshot, so a backup that requests dozens at once waits on its client
// (make bench-scale: 60 snapshots took 60 s before the first was ready; at 50 the run was 45%
// shorter).
const defaultAPIQPS = 5

// apiQPS reads --kube-api-qps (as one argument with "=" or followed by its value; the last setting
// wins), defaultAPIQPS when it is not set or cannot be read.
func apiQPS(args []string) float64 {
	qps := float64(defaultAPIQPS)
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--kube-api-qps=")
		if !ok && a == "--kube-api-qps" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			qps = f
		}
	}
	return qps
}

// rateNote says which snapshot-controller pods run at the default API client rate ("" when none
// does), for the controller check's detail: not a fault, a limit on backups of many volumes.
func rateNote(pods []corev1.Pod) string {
	var slow []string
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			if strings.Contains(c.Name+" "+c.Image, "snapshot-controller") && apiQPS(append(append([]string{}, c.Command...), c.Args...)) <= defaultAPIQPS {
				slow = append(slow, p.Namespace+"/"+p.Name)
			}
		}
	}
	if len(slow) == 0 {
		return ""
	}
	return "; " + strings.Join(slow, ", ") + " runs at the default API client rate (--kube-api-qps 5, --kube-api-burst 10): " +
		"backups of dozens of snapshot volumes at once wait on it (60 VolumeSnapshots took a minute in the lab); " +
		"raise both (e.g. 50 and 100) for such backups"
}
