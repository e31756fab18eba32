package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

const topologyCheck = "volume topology"

// checkTopology says where movers cannot go (docs/volumes.md, "Where each mover runs"): nodes
// cordoned or NotReady, where the movers of volumes bound to them cannot run; StorageClasses
// whose allowed topology covers no schedulable node; drivers whose volumes and snapshots stay
// on one node.
func checkTopology(ctx context.Context, d *Deps, cfg *Config) []Result {
	nodes, err := d.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn(topologyCheck, "cannot list nodes: "+err.Error(), "the caller needs to list nodes")}
	}
	var out []Result
	var usable []corev1.Node
	var down, tainted []string
	for _, n := range nodes.Items {
		switch r := unfit(&n, nil); {
		case r == "not Ready" || r == "cordoned":
			down = append(down, n.Name+": "+r)
		case r != "":
			tainted = append(tainted, n.Name+": "+r)
		default:
			usable = append(usable, n)
		}
	}
	if len(down) > 0 {
		out = append(out, warn("nodes", "no mover can run on "+strings.Join(down, "; ")+": the volumes bound to those nodes (node-local, or in use by their pods) cannot be backed up or restored meanwhile",
			"uncordon the node or bring its kubelet back; a node gone for good: delete it, and restore its node-local volumes elsewhere (--storage-class-mapping)"))
	} else {
		detail := progress.Plural(len(usable), "node", "nodes") + " Ready and schedulable"
		if len(tainted) > 0 {
			detail += "; tainted (movers of the volumes there carry the tolerations of the pods they follow): " + strings.Join(tainted, "; ")
		}
		out = append(out, ok("nodes", detail))
	}
	f, err := readStorage(ctx, d)
	if err != nil {
		return out
	}
	for _, name := range classesInScope(ctx, d, cfg, f) {
		if sc := f.classes[name]; sc != nil && len(sc.AllowedTopologies) > 0 && !anyNodeAllowed(usable, sc.AllowedTopologies) {
			out = append(out, fail(topologyCheck+" of "+name, fmt.Sprintf("StorageClass %s allows only %s, where no schedulable node is", name, describeTopology(sc.AllowedTopologies)),
				"add or uncordon a node there, or restore with --storage-class-mapping "+name+":<another class>"))
		}
	}
	out = append(out, nodeLocalDrivers(ctx, d, nodes.Items)...)
	return out
}

func anyNodeAllowed(nodes []corev1.Node, terms []corev1.TopologySelectorTerm) bool {
	for _, n := range nodes {
		for _, t := range terms {
			match := true
			for _, e := range t.MatchLabelExpressions {
				v, has := n.Labels[e.Key]
				in := false
				for _, x := range e.Values {
					in = in || x == v
				}
				match = match && has && in
			}
			if match {
				return true
			}
		}
	}
	return false
}

func describeTopology(terms []corev1.TopologySelectorTerm) string {
	var s []string
	for _, t := range terms {
		for _, e := range t.MatchLabelExpressions {
			s = append(s, e.Key+" in "+strings.Join(e.Values, ","))
		}
	}
	return strings.Join(s, " or ")
}

// nodeLocalDrivers names the CSI drivers with a topology key whose value is, on every node that
// registers them, the node's own name (TopoLVM's topology.topolvm.io/node, OpenEBS's
// openebs.io/nodename, kubernetes.io/hostname): their volumes, and the snapshots of those, exist
// on one node only.
func nodeLocalDrivers(ctx context.Context, d *Deps, nodes []corev1.Node) []Result {
	list, err := d.Kube.StorageV1().CSINodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	labels := map[string]map[string]string{}
	for _, n := range nodes {
		labels[n.Name] = n.Labels
	}
	perNode := map[string]map[string]bool{} // driver → key → the node's name on every node so far
	count := map[string]int{}
	for _, cn := range list.Items {
		for _, dr := range cn.Spec.Drivers {
			count[dr.Name]++
			if perNode[dr.Name] == nil {
				perNode[dr.Name] = map[string]bool{}
				for _, k := range dr.TopologyKeys {
					perNode[dr.Name][k] = true
				}
			}
			for k := range perNode[dr.Name] {
				v := labels[cn.Name][k]
				perNode[dr.Name][k] = contains(dr.TopologyKeys, k) && v != "" && (v == cn.Name || v == labels[cn.Name][corev1.LabelHostname])
			}
		}
	}
	var out []Result
	for _, driver := range sortedKeys(perNode) {
		for _, k := range sortedKeys(perNode[driver]) {
			if perNode[driver][k] {
				out = append(out, ok(topologyCheck+" of "+driver, fmt.Sprintf("node-local: topology key %s names the node itself on each of its %d nodes, so its volumes and their VolumeSnapshots exist on one node only; "+
					"snapshot mode keeps no copy off that node and restores only there: use snapshot-move or fs (movers run on the volume's node), and --storage-class-mapping to restore onto another class when the node is gone", k, count[driver])))
				break
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
