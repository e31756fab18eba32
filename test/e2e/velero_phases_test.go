//go:build e2e && velerolab

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// phaseLog records when this test first saw each step of a bench command in the cluster (watch
// arrival on the host): every VolumeSnapshot, claim, pod and Job made during the command in the
// namespaces watched, Velero's Backups, Restores, DataUploads and DataDownloads, and each change of
// their state (snapshot ready, claim bound, pod scheduled, running, exited, a Velero phase), so
// that the bench shows where each tool's wall time goes. Objects that existed before it started
// are followed only from their next change, and only their deletion is reported.
type phaseLog struct {
	start  time.Time
	mu     sync.Mutex
	seen   map[string]bool // "kind ns/name step" already recorded
	born   map[string]bool // "kind ns/name" created while watched
	lines  []phaseLine
	cancel context.CancelFunc
}

type phaseLine struct {
	at   time.Time
	what string
}

// phaseResources are the resources a phaseLog watches, by the short name it prints.
var phaseResources = map[string]schema.GroupVersionResource{
	"VolumeSnapshot": {Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"},
	"PVC":            {Version: "v1", Resource: "persistentvolumeclaims"},
	"Pod":            {Version: "v1", Resource: "pods"},
	"Job":            {Group: "batch", Version: "v1", Resource: "jobs"},
	"Backup":         {Group: "velero.io", Version: "v1", Resource: "backups"},
	"Restore":        {Group: "velero.io", Version: "v1", Resource: "restores"},
	"DataUpload":     {Group: "velero.io", Version: "v2alpha1", Resource: "datauploads"},
	"DataDownload":   {Group: "velero.io", Version: "v2alpha1", Resource: "datadownloads"},
}

// watchPhases starts a phaseLog of namespaces once all its watches are open; it counts from
// then, so start the measured command right after.
func watchPhases(t *testing.T, namespaces ...string) *phaseLog {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &phaseLog{seen: map[string]bool{}, born: map[string]bool{}, cancel: cancel}
	var watching sync.WaitGroup
	for _, ns := range namespaces {
		for kind, gvr := range phaseResources {
			watching.Add(1)
			go kube.Follow(ctx, watchedOnce(dyn.Resource(gvr).Namespace(ns), watching.Done), func(ev watch.Event) {
				if o, ok := ev.Object.(*unstructured.Unstructured); ok {
					p.record(kind, ev.Type, o)
				}
			})
		}
	}
	open := make(chan struct{})
	go func() { watching.Wait(); close(open) }()
	select { // every watch open: the command's first steps are not missed
	case <-open:
	case <-time.After(time.Minute):
		cancel()
		t.Fatalf("the watches of %v (%d resources each) did not open within a minute", namespaces, len(phaseResources))
	}
	p.start = time.Now()
	return p
}

// watchedOnce lists and watches r, calling opened once its first watch is open.
func watchedOnce(r dynamic.ResourceInterface, opened func()) cache.ListerWatcher {
	var once sync.Once
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return r.List(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := r.Watch(ctx, o)
			if err == nil {
				once.Do(opened)
			}
			return w, err
		},
	}
}

// record notes the steps of o that ev shows.
func (p *phaseLog) record(kind string, typ watch.EventType, o *unstructured.Unstructured) {
	now := time.Now()
	id := kind + " " + o.GetNamespace() + "/" + o.GetName()
	p.mu.Lock()
	defer p.mu.Unlock()
	if typ == watch.Added && !p.born[id] {
		p.born[id] = true
		p.add(now, id, "created")
	}
	switch {
	case typ == watch.Deleted:
		p.add(now, id, "gone")
	case !p.born[id]:
		return
	case o.GetDeletionTimestamp() != nil:
		p.add(now, id, "deleting")
	}
	for _, step := range phaseSteps(kind, o) {
		p.add(now, id, step)
	}
}

func (p *phaseLog) add(at time.Time, id, step string) {
	if key := id + " " + step; !p.seen[key] {
		p.seen[key] = true
		p.lines = append(p.lines, phaseLine{at: at, what: id + " " + step})
	}
}

// phaseSteps are the states o is in, as steps of its kind.
func phaseSteps(kind string, o *unstructured.Unstructured) []string {
	var steps []string
	str := func(path ...string) string { s, _, _ := unstructured.NestedString(o.Object, path...); return s }
	switch kind {
	case "VolumeSnapshot":
		if ready, _, _ := unstructured.NestedBool(o.Object, "status", "readyToUse"); ready {
			steps = append(steps, "ready")
		}
	case "PVC":
		if ph := str("status", "phase"); ph != "" {
			steps = append(steps, ph)
		}
	case "Pod":
		if node := str("spec", "nodeName"); node != "" {
			steps = append(steps, "scheduled")
		}
		statuses, _, _ := unstructured.NestedSlice(o.Object, "status", "containerStatuses")
		for _, s := range statuses {
			state, _ := s.(map[string]any)["state"].(map[string]any)
			if state["running"] != nil {
				steps = append(steps, "running")
			}
			if state["terminated"] != nil {
				steps = append(steps, "exited")
			}
		}
	default: // Jobs, and Velero's objects by their phase
		if ph := str("status", "phase"); ph != "" {
			steps = append(steps, ph)
		}
	}
	return steps
}

// report stops the log and prints each step with its time from the start, in order.
func (p *phaseLog) report(t *testing.T, what string) {
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.SliceStable(p.lines, func(i, j int) bool { return p.lines[i].at.Before(p.lines[j].at) })
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintf(&b, "\nMEASURE   %+7.1fs %s", l.at.Sub(p.start).Seconds(), l.what)
	}
	t.Logf("MEASURE steps of %s as the cluster showed them (seconds from the command's start):%s", what, b.String())
}
