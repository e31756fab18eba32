// Package policy reads Velero's resource policy files (version v1) for `create --resource-policies`:
// volumePolicies choose how each volume's data is backed up, the first rule whose conditions all
// match wins, and includeExcludePolicy adds scoped resource filters. The format is Velero's, field
// for field (internal/resourcepolicies in vmware-tanzu/velero), so a file written for Velero works
// unchanged; the one addition is the action snapshot-move.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Version is the only format version, as in Velero.
const Version = "v1"

// Action is what a rule does with the volumes it matches.
type Action string

// Actions: Velero's three, and snapshot-move of our own. Velero's custom (for its plugins) is refused.
const (
	Skip         Action = "skip"
	FSBackup     Action = "fs-backup"
	Snapshot     Action = "snapshot"
	SnapshotMove Action = "snapshot-move"
)

// Policies is a parsed, validated policy file.
type Policies struct {
	Rules []Rule
	// IncludeExclude is the file's includeExcludePolicy (nil when absent).
	IncludeExclude *IncludeExclude
}

// Rule is one volume policy: its number in the file (from 1), its conditions and its action.
type Rule struct {
	Index      int
	Conditions Conditions
	Action     Action
	capacity   *capacityRange
}

// Conditions are Velero's volume conditions; an absent one matches every volume.
type Conditions struct {
	Capacity     string            `json:"capacity,omitempty"`
	StorageClass []string          `json:"storageClass,omitempty"`
	NFS          *NFS              `json:"nfs,omitempty"`
	CSI          *CSI              `json:"csi,omitempty"`
	VolumeTypes  []string          `json:"volumeTypes,omitempty"`
	PVCLabels    map[string]string `json:"pvcLabels,omitempty"`
	PVCPhase     []string          `json:"pvcPhase,omitempty"`
}

// NFS matches NFS volumes; empty fields match any server or path.
type NFS struct {
	Server string `json:"server,omitempty"`
	Path   string `json:"path,omitempty"`
}

// CSI matches CSI volumes of a driver, and optionally of some volume attributes.
type CSI struct {
	Driver           string            `json:"driver,omitempty"`
	VolumeAttributes map[string]string `json:"volumeAttributes,omitempty"`
}

// IncludeExclude is Velero's includeExcludePolicy: scoped resource filters that the command
// line's scoped filters take precedence over.
type IncludeExclude struct {
	IncludedClusterScopedResources   []string `json:"includedClusterScopedResources"`
	ExcludedClusterScopedResources   []string `json:"excludedClusterScopedResources"`
	IncludedNamespaceScopedResources []string `json:"includedNamespaceScopedResources"`
	ExcludedNamespaceScopedResources []string `json:"excludedNamespaceScopedResources"`
}

type file struct {
	Version              string            `json:"version"`
	VolumePolicies       []json.RawMessage `json:"volumePolicies"`
	IncludeExcludePolicy *IncludeExclude   `json:"includeExcludePolicy"`
}

type rawRule struct {
	Conditions Conditions `json:"conditions"`
	Action     struct {
		Type       Action         `json:"type"`
		Parameters map[string]any `json:"parameters,omitempty"`
	} `json:"action"`
}

// Load reads and validates a policy file.
func Load(path string) (*Policies, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--resource-policies: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--resource-policies %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes and validates a policy document. Unknown fields are errors, as in Velero (a
// misspelt condition must not silently match every volume); each error names its rule.
func Parse(data []byte) (*Policies, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var f file
	if err := strictJSON(js, &f); err != nil {
		return nil, err
	}
	if f.Version != Version {
		return nil, fmt.Errorf("version %q: the only supported version is %s", f.Version, Version)
	}
	p := &Policies{IncludeExclude: f.IncludeExcludePolicy}
	if ie := p.IncludeExclude; ie != nil {
		if err := ie.validate(); err != nil {
			return nil, fmt.Errorf("includeExcludePolicy: %w", err)
		}
	}
	for i, raw := range f.VolumePolicies {
		r, err := parseRule(i+1, raw)
		if err != nil {
			return nil, fmt.Errorf("volumePolicies rule %d: %w", i+1, err)
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func strictJSON(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

var phases = map[string]bool{string(corev1.ClaimPending): true, string(corev1.ClaimBound): true, string(corev1.ClaimLost): true}

func parseRule(n int, raw json.RawMessage) (Rule, error) {
	var rr rawRule
	if err := strictJSON(raw, &rr); err != nil {
		return Rule{}, err
	}
	r := Rule{Index: n, Conditions: rr.Conditions, Action: rr.Action.Type}
	switch r.Action {
	case Skip, FSBackup, Snapshot, SnapshotMove:
	case "custom":
		return r, errors.New("action custom hands volumes to a Velero plugin, which kubectl-pvbackup does not run: use skip, fs-backup, snapshot or snapshot-move")
	case "":
		return r, errors.New("no action.type: use skip, fs-backup, snapshot or snapshot-move")
	default:
		return r, fmt.Errorf("action %q: use skip, fs-backup, snapshot or snapshot-move", r.Action)
	}
	c := r.Conditions
	if c.Capacity != "" {
		cr, err := parseCapacity(c.Capacity)
		if err != nil {
			return r, err
		}
		r.capacity = cr
	}
	if c.CSI != nil && c.CSI.Driver == "" && len(c.CSI.VolumeAttributes) > 0 {
		return r, errors.New("csi: volumeAttributes need a driver")
	}
	for _, ph := range c.PVCPhase {
		if !phases[ph] {
			return r, fmt.Errorf("pvcPhase %q: use Pending, Bound or Lost", ph)
		}
	}
	for _, t := range c.VolumeTypes {
		if !knownVolumeType(t) {
			return r, fmt.Errorf("volumeTypes %q: not a Kubernetes volume source (e.g. csi, nfs, hostPath, local)", t)
		}
	}
	if _, err := labels.ValidatedSelectorFromSet(c.PVCLabels); err != nil {
		return r, fmt.Errorf("pvcLabels: %w", err)
	}
	return r, nil
}

// capacityRange is Velero's "lower,upper": an empty or zero bound is open.
type capacityRange struct{ lower, upper resource.Quantity }

func parseCapacity(s string) (*capacityRange, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return nil, fmt.Errorf("capacity %q: write a range \"lower,upper\" (e.g. \"0,100Gi\", \"10Gi,\")", s)
	}
	var q [2]resource.Quantity
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := resource.ParseQuantity(p)
		if err != nil {
			return nil, fmt.Errorf("capacity %q: %q is not a quantity like 10Gi", s, p)
		}
		q[i] = v
	}
	c := &capacityRange{lower: q[0], upper: q[1]}
	if !c.upper.IsZero() && c.upper.Cmp(c.lower) < 0 {
		return nil, fmt.Errorf("capacity %q: the lower bound is above the upper one", s)
	}
	return c, nil
}

func (c *capacityRange) contains(v resource.Quantity) bool {
	if c.lower.Cmp(v) > 0 {
		return false
	}
	return c.upper.IsZero() || c.upper.Cmp(v) >= 0
}

func (ie *IncludeExclude) validate() error {
	check := func(what string, inc, exc []string) error {
		for _, s := range append(append([]string{}, inc...), exc...) {
			if s == "*" {
				return fmt.Errorf("%s: '*' is not allowed in a policy's filters (name the resources)", what)
			}
		}
		for _, e := range exc {
			for _, i := range inc {
				if e == i {
					return fmt.Errorf("%s: %q is both included and excluded", what, e)
				}
			}
		}
		return nil
	}
	if err := check("cluster-scoped resources", ie.IncludedClusterScopedResources, ie.ExcludedClusterScopedResources); err != nil {
		return err
	}
	return check("namespace-scoped resources", ie.IncludedNamespaceScopedResources, ie.ExcludedNamespaceScopedResources)
}

// Volume is what the conditions look at: a claim and, when bound, its PersistentVolume.
type Volume struct {
	PVC *corev1.PersistentVolumeClaim
	PV  *corev1.PersistentVolume // nil for unbound claims
}

// Match returns the first rule whose conditions all hold for v, or nil.
func (p *Policies) Match(v Volume) *Rule {
	if p == nil {
		return nil
	}
	for i := range p.Rules {
		if p.Rules[i].matches(v) {
			return &p.Rules[i]
		}
	}
	return nil
}

func (r *Rule) matches(v Volume) bool {
	c := r.Conditions
	if r.capacity != nil && !r.capacity.contains(capacityOf(v)) {
		return false
	}
	if len(c.StorageClass) > 0 && !contains(c.StorageClass, storageClassOf(v)) {
		return false
	}
	if c.NFS != nil && !matchNFS(c.NFS, v.PV) {
		return false
	}
	if c.CSI != nil && !matchCSI(c.CSI, v.PV) {
		return false
	}
	if len(c.VolumeTypes) > 0 && !matchVolumeType(c.VolumeTypes, v.PV) {
		return false
	}
	if len(c.PVCLabels) > 0 && !labels.SelectorFromSet(c.PVCLabels).Matches(labels.Set(v.PVC.Labels)) {
		return false
	}
	if len(c.PVCPhase) > 0 && !contains(c.PVCPhase, string(v.PVC.Status.Phase)) {
		return false
	}
	return true
}

// capacityOf is the PV's capacity, as in Velero; an unbound claim's is what it asked for
// (Velero sees zero there, so "0,X" ranges match unbound claims in both).
func capacityOf(v Volume) resource.Quantity {
	if v.PV != nil {
		if q, ok := v.PV.Spec.Capacity[corev1.ResourceStorage]; ok {
			return q
		}
	}
	if q, ok := v.PVC.Status.Capacity[corev1.ResourceStorage]; ok {
		return q
	}
	return v.PVC.Spec.Resources.Requests[corev1.ResourceStorage]
}

func storageClassOf(v Volume) string {
	if v.PV != nil && v.PV.Spec.StorageClassName != "" {
		return v.PV.Spec.StorageClassName
	}
	if v.PVC.Spec.StorageClassName != nil {
		return *v.PVC.Spec.StorageClassName
	}
	return ""
}

func matchNFS(c *NFS, pv *corev1.PersistentVolume) bool {
	if pv == nil || pv.Spec.NFS == nil {
		return false
	}
	return (c.Server == "" || c.Server == pv.Spec.NFS.Server) && (c.Path == "" || c.Path == pv.Spec.NFS.Path)
}

func matchCSI(c *CSI, pv *corev1.PersistentVolume) bool {
	if pv == nil || pv.Spec.CSI == nil {
		return false
	}
	if c.Driver != "" && c.Driver != pv.Spec.CSI.Driver {
		return false
	}
	for k, want := range c.VolumeAttributes {
		if got, ok := pv.Spec.CSI.VolumeAttributes[k]; !ok || got != want {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// String describes the rule for a volume's reason: `resource policy rule 2 (storageClass: [gp2])`.
func (r *Rule) String() string {
	return fmt.Sprintf("resource policy rule %d (%s)", r.Index, r.Conditions.String())
}

// String writes the conditions compactly, in Velero's order of documentation.
func (c Conditions) String() string {
	var parts []string
	if c.Capacity != "" {
		parts = append(parts, "capacity: "+c.Capacity)
	}
	if len(c.StorageClass) > 0 {
		parts = append(parts, "storageClass: ["+strings.Join(c.StorageClass, ", ")+"]")
	}
	if c.CSI != nil {
		var f []string
		if c.CSI.Driver != "" {
			f = append(f, "driver: "+c.CSI.Driver)
		}
		if len(c.CSI.VolumeAttributes) > 0 {
			f = append(f, "volumeAttributes: "+mapString(c.CSI.VolumeAttributes))
		}
		parts = append(parts, "csi: {"+strings.Join(f, ", ")+"}")
	}
	if c.NFS != nil {
		var f []string
		if c.NFS.Server != "" {
			f = append(f, "server: "+c.NFS.Server)
		}
		if c.NFS.Path != "" {
			f = append(f, "path: "+c.NFS.Path)
		}
		parts = append(parts, "nfs: {"+strings.Join(f, ", ")+"}")
	}
	if len(c.VolumeTypes) > 0 {
		parts = append(parts, "volumeTypes: ["+strings.Join(c.VolumeTypes, ", ")+"]")
	}
	if len(c.PVCLabels) > 0 {
		parts = append(parts, "pvcLabels: "+mapString(c.PVCLabels))
	}
	if len(c.PVCPhase) > 0 {
		parts = append(parts, "pvcPhase: ["+strings.Join(c.PVCPhase, ", ")+"]")
	}
	if len(parts) == 0 {
		return "no conditions: every volume"
	}
	return strings.Join(parts, "; ")
}

func mapString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + ": " + m[k]
	}
	return "{" + strings.Join(keys, ", ") + "}"
}
