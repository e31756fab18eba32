package cli

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/schedule"
)

// namespaces are where the CronJob goes (-n, else the one namespace backed up) and what it backs
// up: the literal names each get a Role; -A, patterns or --exclude-namespaces without names
// put the rights in the ClusterRole, for every namespace.
func (o *ScheduleOptions) namespaces() (cronNS string, backedUp []string, clusterWide bool, err error) {
	flagNS := ""
	if o.configFlags.Namespace != nil {
		flagNS = *o.configFlags.Namespace
	}
	include := o.create.IncludeNamespaces
	switch {
	case o.AllNamespaces && len(include) > 0:
		return "", nil, false, fmt.Errorf("-A backs up every namespace: leave out --include-namespaces")
	case o.AllNamespaces:
		clusterWide = true
	case len(include) == 0 && flagNS == "":
		return "", nil, false, fmt.Errorf("say what the schedule backs up: --include-namespaces NS[,NS], -n NAMESPACE, or -A for every namespace")
	case len(include) == 0:
		backedUp = []string{flagNS}
	default:
		backedUp = include
		for _, ns := range include {
			clusterWide = clusterWide || strings.ContainsAny(ns, "*?[")
		}
	}
	cronNS = flagNS
	if cronNS == "" {
		if len(backedUp) != 1 || clusterWide {
			return "", nil, false, fmt.Errorf("say with -n NAMESPACE where the CronJob goes (e.g. a namespace of its own: its Secret holds the password)")
		}
		cronNS = backedUp[0]
	}
	return cronNS, backedUp, clusterWide, nil
}

// createArgs are create's arguments in the CronJob: the name, location, namespaces, labels and
// image the schedule sets, then every create flag given, as given.
func (o *ScheduleOptions) createArgs() []string {
	c := &o.create
	args := []string{"create", "--generate-name=" + o.Name, "--to=" + c.location.URL}
	for _, ns := range o.cfg.Namespaces {
		args = append(args, "--include-namespaces="+ns)
	}
	labels := map[string]string{schedule.LabelSchedule: o.cfg.Label()}
	for k, v := range c.labels {
		labels[k] = v
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--labels="+k+"="+labels[k])
	}
	args = append(args, "--mover-image="+c.mover.image(), "--mover-pull-policy="+c.mover.PullPolicy)
	if o.cfg.PullSecret != "" {
		args = append(args, "--mover-pull-secret="+o.cfg.Namespace+"/"+o.cfg.PullSecret)
	}
	o.createFlags.VisitAll(func(f *pflag.Flag) {
		if !f.Changed || createFlagsSet[f.Name] {
			return
		}
		args = append(args, flagArgs(f)...)
	})
	return args
}

// flagArgs writes a flag back as arguments: a list flag once per element (quoted as pflag reads
// lists, when an element holds a comma or a quote), any other as --name=value.
func flagArgs(f *pflag.Flag) []string {
	sv, ok := f.Value.(pflag.SliceValue)
	if !ok {
		return []string{"--" + f.Name + "=" + f.Value.String()}
	}
	var out []string
	for _, v := range sv.GetSlice() {
		out = append(out, "--"+f.Name+"="+csvField(v))
	}
	return out
}

func csvField(v string) string {
	if !strings.ContainsAny(v, ",\"\n") {
		return v
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{v})
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// pullSecret is the name of --mover-pull-secret, which must be in the CronJob's namespace: the
// CronJob's own pod pulls the mover image with it. Without a namespace it is that one (not the
// kubeconfig's of the machine printing the schedule).
func (o *ScheduleOptions) pullSecret(cronNS string) (string, error) {
	ref := o.create.mover.PullSecret
	ns, name, found := strings.Cut(ref, "/")
	if !found {
		return ref, nil
	}
	if ns != cronNS {
		return "", fmt.Errorf("--mover-pull-secret %s: a schedule's pull Secret must be in the CronJob's namespace %s, whose pod pulls the mover image with it too: copy it there and give its name", ref, cronNS)
	}
	return name, nil
}
