// Package restore is the engine of `kubectl pvbackup restore`: it reads a backup, decides what
// to create and in which order, sanitises each object and applies it to the cluster.
package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/modifiers"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Policy says what happens to objects that already exist.
type Policy string

// Existing-resource policies.
const (
	PolicyNone   Policy = "none"   // leave them as they are (reported as skipped)
	PolicyUpdate Policy = "update" // overwrite them with the backup's spec
)

// ParsePolicy checks an --existing-resource-policy value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyNone, PolicyUpdate:
		return p, nil
	}
	return "", fmt.Errorf("--existing-resource-policy=%q: use none or update", s)
}

// Config is what to restore.
type Config struct {
	Backup            string
	Namespaces        selection.NamespaceFilter // source namespaces
	Resources         selection.ResourceFilter
	LabelSelector     string
	NamespaceMapping  mapping.Map
	Policy            Policy
	PreserveNodePorts bool
	DryRun            bool
	// ArchiveKey decrypts the resources archive (keyring.ArchiveKey).
	ArchiveKey string
	// CRDTimeout bounds the wait for a restored CRD to become Established.
	CRDTimeout time.Duration
	// RestoreVolumes fills restored PVCs with their backed-up data before workloads are created.
	RestoreVolumes bool
	// StorageClassMapping renames the StorageClass of restored PVCs, PVs and StatefulSet
	// volumeClaimTemplates, in spec.storageClassName and the beta annotation: old → new.
	StorageClassMapping mapping.Map
	// IncludeFinishedJobs restores Jobs that had completed or failed and Pods that had
	// succeeded or failed; they run again.
	IncludeFinishedJobs bool
	// RunningJobs decides about Jobs that were running at backup time (default suspend).
	RunningJobs RunningJobs
	// Modifiers patch objects after sanitising and storage class mapping, before namespace
	// mapping (Velero's order); nil: none.
	Modifiers *modifiers.Modifiers
	// Parallel is how many objects of one resource type are created at once (0: 16).
	Parallel int
}

// VolumeEngine fills restored claims with their data (internal/volumes through the CLI).
type VolumeEngine interface {
	Restore(ctx context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error)
}

// VolumeItem is what happened to one claim's data.
type VolumeItem struct {
	Namespace     string `json:"namespace"`
	PVC           string `json:"pvc"`
	From          string `json:"from"` // source namespace/pvc
	Mode          string `json:"mode"`
	Action        Action `json:"action"`
	Reason        string `json:"reason,omitempty"`
	KopiaSnapshot string `json:"kopiaSnapshot,omitempty"`
	Files         int64  `json:"files,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	// HardLinks are the files linked again to another path, as they were at the backup.
	HardLinks int64   `json:"hardLinks,omitempty"`
	Seconds   float64 `json:"durationSeconds,omitempty"`
	// MoverNode is the node the restore mover ran on.
	MoverNode string `json:"moverNode,omitempty"`
	// MoverSeconds is the mover's own work (Seconds less it: placing, starting and ending it).
	MoverSeconds float64 `json:"moverSeconds,omitempty"`
}

// Deps are the engine's connections to the world.
type Deps struct {
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Catalog   *catalog.Catalog
	// Source, when set, is the backup instead of Catalog and Config.ArchiveKey (a Velero backup).
	Source   Source
	Progress progress.Reporter
	Volumes  VolumeEngine // nil: specs only
	// Preflight checks the claims the movers fill before anything is created (nil: none).
	Preflight Preflight
}

// Action is what happened to one object.
type Action string

// Actions.
const (
	Created     Action = "created"
	Updated     Action = "updated"
	Skipped     Action = "skipped"
	Failed      Action = "failed"
	WouldCreate Action = "would-create"
	WouldUpdate Action = "would-update"
)

// Item is the outcome for one object.
type Item struct {
	Resource  string `json:"resource"` // group/resource, "pods" for core
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    Action `json:"action"`
	Reason    string `json:"reason,omitempty"`
}

// Result is what a restore did.
type Result struct {
	Backup   string         `json:"backup"`
	DryRun   bool           `json:"dryRun,omitempty"`
	Items    []Item         `json:"items"`
	Summary  map[Action]int `json:"summary"`
	Volumes  []VolumeItem   `json:"volumes,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// Failed reports whether any item or volume failed.
func (r *Result) Failed() bool {
	for _, v := range r.Volumes {
		if v.Action == Failed {
			return true
		}
	}
	return r.Summary[Failed] > 0
}

// Volume actions.
const (
	Restored     Action = "restored"      // filled by a mover
	FromSnapshot Action = "from-snapshot" // provisioned from the kept VolumeSnapshot
	WouldRestore Action = "would-restore"
)

// ErrWrongPassword is returned when the archive cannot be decrypted.
var ErrWrongPassword = archive.ErrWrongPassword

// entry is one object from the archive on its way into the cluster.
type entry struct {
	key     archive.Key // as backed up
	gr      schema.GroupResource
	obj     *unstructured.Unstructured
	oldUID  types.UID
	skip    string // reason, when it is not restored
	note    string // what the user should know about restoring it
	suspend bool   // a running Job restored suspended
	created bool
	// refused is why a claim was not created: no node could use its data (refuseUnplaceable).
	refused string
	// row is its outcome, recorded by its worker; item is the row's index in Result.Items once
	// committed (rows are committed in restore order, whatever order the workers finish in).
	row  Item
	item int
	done atomic.Bool // applyOne has finished with it
	// owners are its owner references as backed up (uids of the source cluster); later are
	// those whose owners are restored after it, which linkOwners sets.
	owners []metav1.OwnerReference
	later  []metav1.OwnerReference
}

func (e *entry) applied() bool { return e.done.Load() }

func (e *entry) addNote(n string) {
	if e.note != "" {
		n = e.note + "; " + n
	}
	e.note = n
}

// Run restores the backup. It reads and decrypts the whole archive before it changes anything,
// so a wrong password or a damaged archive leaves the cluster untouched.
func Run(ctx context.Context, d Deps, cfg Config) (*Result, error) {
	d, cfg = withDefaults(d, cfg)
	sel, err := labels.Parse(cfg.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", cfg.LabelSelector, err)
	}
	r := &run{d: d, cfg: cfg, chosen: map[schema.GroupResource]bool{}, newUID: map[types.UID]types.UID{}, vols: map[string]catalog.Volume{},
		crds: map[string]bool{}, own: owners{kinds: map[schema.GroupVersionKind]schemaResource{}}}
	// Every refusal comes before anything in the cluster changes: apply is the one step that
	// writes.
	for _, s := range r.steps(sel) {
		if err := s.do(ctx); err != nil {
			return nil, err
		}
	}
	return r.apply(ctx, r.entries)
}

// step is one named step of a restore of objects.
type step struct {
	name string
	do   func(context.Context) error
}

// steps are what Run does before it applies the objects, in order.
func (r *run) steps(sel labels.Selector) []step {
	return []step{
		{"read the backup", r.read},
		{"resolve the resources chosen", r.resolveResources},
		{"select objects", func(context.Context) error { r.selectEntries(r.entries, sel); return nil }},
		{"check --storage-class-mapping", func(ctx context.Context) error { return r.checkClassMapping(ctx, r.entries) }},
		{"sanitise and map objects", func(context.Context) error { return r.transform(r.entries) }},
		{"preflight", func(ctx context.Context) error { return r.preflight(ctx, r.entries) }},
	}
}

// withDefaults fills what the caller left zero.
func withDefaults(d Deps, cfg Config) (Deps, Config) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	if cfg.Policy == "" {
		cfg.Policy = PolicyNone
	}
	if cfg.RunningJobs == "" {
		cfg.RunningJobs = RunningSuspend
	}
	if cfg.CRDTimeout == 0 {
		cfg.CRDTimeout = time.Minute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	return d, cfg
}

// read reads the backup's objects and volume records, and starts the Result.
func (r *run) read(ctx context.Context) error {
	h, entries, err := readBackup(ctx, r.d, r.cfg)
	if err != nil {
		return err
	}
	r.res = &Result{Backup: r.cfg.Backup, DryRun: r.cfg.DryRun, Summary: map[Action]int{}, Warnings: h.Warnings}
	r.entries = entries
	for _, v := range h.Volumes {
		r.vols[v.Namespace+"/"+v.PVC] = v
	}
	return nil
}

// resolveResources discovers what the cluster serves and resolves the resource filters against
// it and what the backup holds: custom resources whose CRD this restore brings back are not
// served yet.
func (r *run) resolveResources(context.Context) error {
	all, warns, err := selection.Discover(r.d.Discovery)
	if err != nil {
		return err
	}
	r.res.Warnings = append(r.res.Warnings, warns...)
	r.served = map[schema.GroupVersionResource]bool{}
	for _, x := range all {
		r.served[x.GVR] = true
		r.own.kinds[x.GVR.GroupVersion().WithKind(x.Kind)] = schemaResource{gvr: x.GVR, namespaced: x.Namespaced}
	}
	universe := append([]selection.Resource{}, all...)
	for _, e := range r.entries {
		if !r.served[e.key.GVR] {
			r.served[e.key.GVR] = false
			kind := e.obj.GetKind()
			universe = append(universe, selection.Resource{GVR: e.key.GVR, Kind: kind, Singular: strings.ToLower(kind), Namespaced: e.key.Namespace != ""})
		}
	}
	chosen, err := r.cfg.Resources.Resolve(universe)
	if err != nil {
		return err
	}
	for _, x := range chosen {
		r.chosen[x.GVR.GroupResource()] = true
	}
	return nil
}

// readBackup reads the backup's header and objects, from d.Source when set, else from the
// catalog: every refusal comes before anything in the cluster changes.
func readBackup(ctx context.Context, d Deps, cfg Config) (SourceHeader, []*entry, error) {
	if d.Source != nil {
		done := d.Progress.Start("read backup " + cfg.Backup)
		h, entries, err := readSource(ctx, d.Source, cfg.Backup)
		if err == nil {
			err = checkMapping(cfg, h.Namespaces)
		}
		if err != nil {
			done("", err)
			return SourceHeader{}, nil, err
		}
		done(fmt.Sprintf("%d objects", len(entries)), nil)
		return h, entries, nil
	}
	m, err := d.Catalog.Manifest(ctx, cfg.Backup)
	if err != nil {
		return SourceHeader{}, nil, err
	}
	if m.FormatVersion < catalog.FormatLocationKey {
		return SourceHeader{}, nil, fmt.Errorf("backup %q has format %d: its archive and volume data are encrypted with the password itself, as development builds did before per-namespace keys (v0.1.0 was never released); this build cannot open it: restore it with the build that made it, and back up again: %w", cfg.Backup, m.FormatVersion, catalog.ErrOldFormat)
	}
	if m.Status == catalog.Failed {
		return SourceHeader{}, nil, fmt.Errorf("backup %q failed and has nothing to restore: %s", cfg.Backup, strings.Join(m.Errors, "; "))
	}
	if err := checkMapping(cfg, m.Namespaces); err != nil {
		return SourceHeader{}, nil, err
	}
	h := SourceHeader{Namespaces: m.Namespaces, Volumes: m.Volumes}
	if m.Status == catalog.PartiallyFailed {
		h.Warnings = append(h.Warnings, fmt.Sprintf("backup %q is PartiallyFailed: %s", cfg.Backup, strings.Join(m.Errors, "; ")))
	}
	done := d.Progress.Start("read backup " + cfg.Backup)
	entries, err := readArchive(ctx, d.Catalog, cfg.Backup, cfg.ArchiveKey)
	if err != nil {
		done("", err)
		return SourceHeader{}, nil, err
	}
	done(fmt.Sprintf("%d objects", len(entries)), nil)
	return h, entries, nil
}

func readArchive(ctx context.Context, c *catalog.Catalog, name, key string) ([]*entry, error) {
	rd, err := c.NewReader(ctx, name, catalog.ResourcesFile)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	ar, err := archive.NewReader(rd, key)
	if err != nil {
		if errors.Is(err, archive.ErrWrongPassword) {
			// The password opened the location's key (or we would not be here): the archive was
			// encrypted under another key, so the key file or the archive was replaced.
			return nil, fmt.Errorf("the archive of backup %q in %s does not open with the location's key: it was encrypted under another location key (was keys/location.age or the archive replaced or copied from another location?): %w", name, c.Location(), err)
		}
		return nil, fmt.Errorf("backup %q: %w", name, err)
	}
	var out []*entry
	for {
		k, data, err := ar.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backup %q: %w", name, err)
		}
		var o unstructured.Unstructured
		if err := json.Unmarshal(data, &o.Object); err != nil {
			return nil, fmt.Errorf("backup %q: %s is not a JSON object: %w", name, k.Path(), err)
		}
		if _, ok := o.Object["metadata"].(map[string]any); !ok {
			return nil, fmt.Errorf("backup %q: %s has no metadata", name, k.Path())
		}
		out = append(out, &entry{key: k, gr: k.GVR.GroupResource(), obj: &o, oldUID: o.GetUID()})
	}
}

type run struct {
	d      Deps
	cfg    Config
	res    *Result
	served map[schema.GroupVersionResource]bool
	chosen map[schema.GroupResource]bool
	// mu guards what the workers of one resource type share: newUID, linkLater.
	mu sync.Mutex
	// newUID maps the uid an object had in the backup to the uid it has now, to rewrite the
	// owner references of objects restored after their owners.
	newUID map[types.UID]types.UID
	own    owners
	// linkLater are the objects created before an owner of theirs (see linkOwners).
	linkLater []*entry
	// crds are the names of the CRDs this restore created (or would create).
	crds map[string]bool
	// held are the nodePorts in use, for a dry run's check (nodeports.go).
	held *nodePortHolders
	// vols are the backup's volume records by source namespace/pvc.
	vols map[string]catalog.Volume
	// claims are the PVC entries in restore order, filled once the claims phase ends.
	claims []*entry
	// entries are the archive's objects as restored (workloadFor reads their pod templates).
	entries []*entry
	// restoredPVs are the PVs this restore creates.
	restoredPVs map[string]bool
}

// selectEntries marks what is not restored, and why. It reads the objects as backed up (with
// their status), before transform changes them.
func (r *run) selectEntries(entries []*entry, sel labels.Selector) {
	inSet := map[types.UID]*entry{}
	for _, e := range entries {
		ns := e.key.Namespace
		if e.gr == (schema.GroupResource{Resource: "namespaces"}) {
			ns = e.key.Name
		}
		switch {
		case !r.chosen[e.gr]:
			e.skip = "-" // filtered out: not reported
		case ns != "" && !r.cfg.Namespaces.Match(ns):
			e.skip = "-"
		case e.gr != (schema.GroupResource{Resource: "namespaces"}) && !sel.Matches(labels.Set(e.obj.GetLabels())):
			e.skip = "-"
		}
		if e.skip == "" && e.oldUID != "" {
			inSet[e.oldUID] = e
		}
	}
	notRestored := r.decideJobs(entries, inSet)
	r.restoredPVs = map[string]bool{}
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		if ref := leftToController(e); ref != nil && inSet[ref.UID] != nil {
			e.skip, e.note = fmt.Sprintf("left to its controller %s %s", ref.Kind, ref.Name), ""
			continue
		}
		if ref := metav1.GetControllerOfNoCopy(e.obj); ref != nil {
			if job, ok := notRestored[ref.UID]; ok {
				e.skip, e.note = fmt.Sprintf("its Job %s is not restored: %s", ref.Name, job.skip), ""
				continue
			}
		}
		switch e.gr {
		case schema.GroupResource{Resource: "secrets"}:
			if t, _, _ := unstructured.NestedString(e.obj.Object, "type"); t == "kubernetes.io/service-account-token" {
				e.skip = "service account token secrets are issued by the cluster"
			}
		case grPV:
			if p, _, _ := unstructured.NestedString(e.obj.Object, "spec", "persistentVolumeReclaimPolicy"); p != "Retain" {
				e.skip = fmt.Sprintf("reclaim policy %s: its storage was deleted with its claim; the claim gets a new volume", p)
			} else {
				r.restoredPVs[e.key.Name] = true
			}
		case grStorageClass:
			e.skip = r.mappedAway(e)
		}
	}
	r.own.restored = map[types.UID]*entry{}
	for _, e := range entries {
		if e.skip == "" && e.oldUID != "" {
			r.own.restored[e.oldUID] = e
		}
	}
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

// transform turns each object to restore into what is created, in Velero's order: sanitise,
// map the StorageClass, apply the resource modifiers (to the object still in the namespace it
// was backed up from, which is what their namespaces condition names), then map the namespace.
// It changes nothing in the cluster: a modifier that fails fails the restore before anything is
// created.
func (r *run) transform(entries []*entry) error {
	var failed []string
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		Sanitize(e.gr, e.obj, SanitizeOptions{PreserveNodePorts: r.cfg.PreserveNodePorts, RestoredPVs: r.restoredPVs})
		mapStorageClass(e.gr, e.obj, r.cfg.StorageClassMapping)
		if e.suspend {
			_ = unstructured.SetNestedField(e.obj.Object, true, "spec", "suspend")
		}
		changed, err := r.cfg.Modifiers.Apply(e.gr, e.obj)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", e.gr, objectName(e.key.Namespace, e.key.Name), err))
			continue
		}
		if len(changed) > 0 {
			e.addNote("changed by " + ruleList(changed))
		}
		MapNamespace(e.gr, e.obj, r.cfg.NamespaceMapping)
		if e.gr == grPVC {
			r.prepareClaim(e)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("--resource-modifiers: %d of the objects to restore cannot be modified, nothing was restored: %s", len(failed), strings.Join(failed, "; "))
	}
	if idx := r.cfg.Modifiers.Unmatched(); len(idx) > 0 {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("--resource-modifiers: %s matched no restored object (conditions name the namespace an object was backed up from, and core resources without a group: \"persistentvolumeclaims\", not \"persistentvolumeclaims.storage.k8s.io\")", ruleList(idx)))
	}
	return nil
}

func objectName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func ruleList(idx []int) string {
	parts := make([]string, len(idx))
	for i, x := range idx {
		parts[i] = fmt.Sprintf("resourceModifierRules[%d]", x)
	}
	return strings.Join(parts, ", ")
}

// record notes the outcome of e; commit adds it to the result.
func (r *run) record(e *entry, a Action, reason string) {
	if reason == "" && (a == Created || a == WouldCreate || a == Updated || a == WouldUpdate) {
		reason = e.note
	} else if a == WouldUpdate && e.note != "" {
		reason += "; " + e.note
	}
	e.row = Item{Resource: e.gr.String(), Namespace: e.obj.GetNamespace(), Name: e.obj.GetName(), Action: a, Reason: reason}
}

// commit adds e's recorded outcome to the result. Only the goroutine that runs the phases
// calls it, between the workers' batches.
func (r *run) commit(e *entry) {
	e.item = len(r.res.Items)
	r.res.Items = append(r.res.Items, e.row)
	r.res.Summary[e.row.Action]++
	if e.gr == grCRD && (e.row.Action == Created || e.row.Action == Updated || e.row.Action == WouldCreate) {
		r.crds[e.obj.GetName()] = true
	}
}

// ensureNamespaces creates the namespaces objects will go into that the backup does not bring
// (a mapped namespace, or a namespace whose object was filtered out).
func (r *run) ensureNamespaces(ctx context.Context, byKey map[archive.Key]*entry) error {
	brought := map[string]bool{}
	needed := map[string]bool{}
	for k, e := range byKey {
		if e.gr == (schema.GroupResource{Resource: "namespaces"}) {
			brought[e.obj.GetName()] = true
		} else if k.Namespace != "" {
			needed[e.obj.GetNamespace()] = true
		}
	}
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	for ns := range needed {
		if brought[ns] {
			continue
		}
		_, err := r.d.Dynamic.Resource(nsGVR).Get(ctx, ns, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("look up namespace %s: %w", ns, err)
		}
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		e := &entry{gr: nsGVR.GroupResource(), obj: o, key: archive.Key{GVR: nsGVR, Name: ns}}
		byKey[e.key] = e
		r.applyOne(ctx, e)
		r.commit(e)
	}
	return nil
}

// applyOne creates e, or deals with the object of its name that exists, and records the outcome.
// Workers of one resource type run it side by side.
func (r *run) applyOne(ctx context.Context, e *entry) {
	defer e.done.Store(true)
	gvr := e.key.GVR
	if !r.served[gvr] && !r.crdRestored(gvr) {
		r.record(e, Failed, fmt.Sprintf("%s is not served by this cluster (install its API or CRD first)", resourceString(gvr)))
		return
	}
	e.owners = e.obj.GetOwnerReferences()
	refs, later := r.ownerRefs(ctx, e)
	e.later = later
	if len(e.owners) > 0 {
		e.obj.SetOwnerReferences(refs)
	}
	ri := r.client(gvr, e.obj.GetNamespace())
	if r.cfg.DryRun {
		r.dryRunOne(ctx, ri, e)
		return
	}
	created, err := r.create(ctx, ri, gvr, e.obj)
	if err == nil {
		e.created = true
		r.restored(e, created, Created)
		return
	}
	// The apiserver validates an object before it looks for one of the same name: a Service
	// whose preserved nodePort is its own fails with "provided port is already allocated", not
	// AlreadyExists. Whatever the refusal, an object of that name is what exists.
	cur, gerr := ri.Get(ctx, e.obj.GetName(), metav1.GetOptions{})
	if !apierrors.IsAlreadyExists(err) && gerr != nil {
		r.record(e, Failed, createFailure(e, err))
		return
	}
	r.exists(ctx, ri, e, cur, gerr)
}

// exists deals with an object that is in the cluster already (cur; getErr when it could not be
// read): it is left alone (PolicyNone) or overwritten (PolicyUpdate), unless it is being deleted.
func (r *run) exists(ctx context.Context, ri dynamic.ResourceInterface, e *entry, cur *unstructured.Unstructured, getErr error) {
	if getErr == nil {
		if why := beingDeleted(cur); why != "" {
			// Skipping or updating it would restore nothing: it is about to go.
			r.record(e, Failed, why)
			return
		}
	}
	if r.cfg.Policy != PolicyUpdate {
		r.record(e, Skipped, "exists")
		if getErr == nil {
			r.setUID(e.oldUID, cur.GetUID())
		}
		return
	}
	if getErr != nil {
		r.record(e, Failed, "exists; update failed: "+reason(getErr))
		return
	}
	updated, err := r.update(ctx, ri, e, cur)
	if err != nil {
		r.record(e, Failed, "exists; update failed: "+reason(err))
		return
	}
	e.created = true
	r.restored(e, updated, Updated)
}

// restored records an object created or updated as o.
func (r *run) restored(e *entry, o *unstructured.Unstructured, a Action) {
	r.setUID(e.oldUID, o.GetUID())
	if len(e.later) > 0 {
		r.mu.Lock()
		r.linkLater = append(r.linkLater, e)
		r.mu.Unlock()
	}
	r.record(e, a, "")
}

func (r *run) dryRunOne(ctx context.Context, ri dynamic.ResourceInterface, e *entry) {
	cur, err := ri.Get(ctx, e.obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err != nil && r.crdRestored(e.key.GVR)):
		r.checkNodePorts(ctx, e)
		r.record(e, WouldCreate, "")
	case err != nil:
		r.record(e, Failed, err.Error())
	case beingDeleted(cur) != "":
		r.record(e, Failed, beingDeleted(cur))
	case r.cfg.Policy == PolicyUpdate:
		r.checkNodePorts(ctx, e)
		r.record(e, WouldUpdate, "exists")
	default:
		r.record(e, Skipped, "exists")
	}
}

func (r *run) setUID(old, now types.UID) {
	if old == "" {
		return
	}
	r.mu.Lock()
	r.newUID[old] = now
	r.mu.Unlock()
}

func (r *run) uidOf(old types.UID) (types.UID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uid, ok := r.newUID[old]
	return uid, ok
}

// beingDeleted explains, for an object that exists but is being deleted, why the restore cannot
// use it ("" if it is not being deleted): the usual case is a PVC held by kubernetes.io/pvc-protection
// while pods (finished ones too) still reference it.
func beingDeleted(o *unstructured.Unstructured) string {
	ts := o.GetDeletionTimestamp()
	if ts == nil {
		return ""
	}
	held := "its finalizers"
	if f := o.GetFinalizers(); len(f) > 0 {
		held = strings.Join(f, ", ")
	}
	hint := "restore it again once it is gone"
	if slices.Contains(o.GetFinalizers(), "kubernetes.io/pvc-protection") {
		hint = "pods still reference it, finished ones too: delete them, then restore again"
	}
	return fmt.Sprintf("exists but is being deleted (since %s, held by %s): %s", ts.UTC().Format(time.RFC3339), held, hint)
}

// create retries briefly on NotFound for custom resources: a CRD can be Established a moment
// before every apiserver handler serves it.
func (r *run) create(ctx context.Context, ri dynamic.ResourceInterface, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ri.Create(ctx, o, metav1.CreateOptions{})
		if err == nil || !apierrors.IsNotFound(err) || time.Now().After(deadline) || r.served[gvr] || !r.crdRestored(gvr) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// update overwrites cur, the object as the cluster has it now, with the backup's.
func (r *run) update(ctx context.Context, ri dynamic.ResourceInterface, e *entry, cur *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	o := e.obj.DeepCopy()
	o.SetResourceVersion(cur.GetResourceVersion())
	// Fields the cluster allocated and will not let change.
	switch e.gr {
	case grService:
		for _, f := range []string{"clusterIP", "clusterIPs"} {
			if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", f); ok {
				if _, set, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", f); !set {
					_ = unstructured.SetNestedField(o.Object, v, "spec", f)
				}
			}
		}
		if !r.cfg.PreserveNodePorts {
			curPorts, _, _ := unstructured.NestedSlice(cur.Object, "spec", "ports")
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			for i := range ports {
				if i < len(curPorts) {
					if np, ok := curPorts[i].(map[string]any)["nodePort"]; ok {
						ports[i].(map[string]any)["nodePort"] = np
					}
				}
			}
			if ports != nil {
				_ = unstructured.SetNestedSlice(o.Object, ports, "spec", "ports")
			}
		}
	case grPVC:
		if v, ok, _ := unstructured.NestedString(cur.Object, "spec", "volumeName"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "volumeName")
		}
	case grJob:
		if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", "selector"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "selector")
		}
		if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", "template"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "template") // immutable
		}
	}
	return ri.Update(ctx, o, metav1.UpdateOptions{})
}

func (r *run) client(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return r.d.Dynamic.Resource(gvr)
	}
	return r.d.Dynamic.Resource(gvr).Namespace(ns)
}

// crdRestored reports whether this restore created (or would create) a CRD serving gvr. It reads
// what commit wrote, between batches: the CRDs' phase is over before custom resources are made.
func (r *run) crdRestored(gvr schema.GroupVersionResource) bool {
	return r.crds[gvr.Resource+"."+gvr.Group]
}

// waitCRDs waits, with a deadline, until every restored CRD is Established.
func (r *run) waitCRDs(ctx context.Context, crds []*entry) {
	done := r.d.Progress.Start("wait for custom resource definitions")
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CRDTimeout)
	defer cancel()
	var late []string
	for _, e := range crds {
		if err := waitEstablished(ctx, r.d.Dynamic, e.key.GVR, e.obj.GetName()); err != nil {
			late = append(late, fmt.Sprintf("%s: %v", e.obj.GetName(), err))
		}
	}
	if len(late) > 0 {
		msg := "CRDs not Established after " + r.cfg.CRDTimeout.String() + ": " + strings.Join(late, "; ")
		r.res.Warnings = append(r.res.Warnings, msg)
		done("", errors.New(msg))
		return
	}
	done(fmt.Sprintf("%d", len(crds)), nil)
}

// waitEstablished waits until CRD name (of resource gvr) is Established.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) error {
	established := func(o *unstructured.Unstructured) bool {
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] == "Established" && cm["status"] == "True" {
				return true
			}
		}
		return false
	}
	lw := kube.ListWatch(dyn.Resource(gvr), dyn, kube.Named(name))
	return kube.Until(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		o, ok := ev.Object.(*unstructured.Unstructured)
		return ok && o.GetName() == name && established(o), nil
	})
}

// reason returns the apiserver's message, which names the field that was refused.
func reason(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}

func resourceString(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Version + "/" + gvr.Resource
	}
	return gvr.Group + "/" + gvr.Version + " " + gvr.Resource
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
