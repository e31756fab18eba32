package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	authzv1 "k8s.io/api/authorization/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

var now = time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)

const driver = "dir.csi.example.com"

// cluster is a fake cluster with the snapshot API served (unless noSnapshots) and objs in it.
func cluster(t *testing.T, noSnapshots bool, objs ...runtime.Object) *Deps {
	t.Helper()
	kube := fake.NewClientset(objs...)
	disc := kube.Discovery().(*fakediscovery.FakeDiscovery)
	disc.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods", Namespaced: true, Kind: "Pod"}}}}
	if !noSnapshots {
		disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: snapv1.SchemeGroupVersion.String(), APIResources: []metav1.APIResource{
			{Name: "volumesnapshots", Namespaced: true, Kind: "VolumeSnapshot"},
			{Name: "volumesnapshotcontents", Kind: "VolumeSnapshotContent"},
			{Name: "volumesnapshotclasses", Kind: "VolumeSnapshotClass"},
		}})
	}
	return &Deps{Kube: kube, Snap: snapfake.NewSimpleClientset(), Discovery: disc, Now: func() time.Time { return now }}
}

func lease(ns, holder string, renewedAgo time.Duration) *coordv1.Lease {
	l := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ControllerLease, Namespace: ns},
		Spec: coordv1.LeaseSpec{LeaseDurationSeconds: ptr.To(int32(15)), RenewTime: &metav1.MicroTime{Time: now.Add(-renewedAgo)}}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	return l
}

func controllerPod(ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "snapshot-controller-abc", Namespace: "kube-system", Labels: map[string]string{"app.kubernetes.io/name": "snapshot-controller"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/sig-storage/snapshot-controller:v8.4.0"}}}}
	if ready {
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	} else {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "no such image"}}}}}
	}
	return p
}

func withArgs(p *corev1.Pod, args ...string) *corev1.Pod {
	p.Spec.Containers[0].Args = args
	return p
}

func TestSnapshotController(t *testing.T) {
	for _, tc := range []struct {
		name        string
		noSnapshots bool
		objs        []runtime.Object
		want        Status
		detail      string
	}{
		{"ready pod, with its version", false, []runtime.Object{controllerPod(true)}, OK, "(v8.4.0) ready"},
		{"ready pod at the default API rate", false, []runtime.Object{controllerPod(true)}, OK, "runs at the default API client rate (--kube-api-qps 5"},
		{"ready pod with a raised API rate", false, []runtime.Object{withArgs(controllerPod(true), "--v=2", "--kube-api-qps", "50", "--kube-api-burst=100")}, OK, "(v8.4.0) ready"},
		{"ready pod with the default API rate named", false, []runtime.Object{withArgs(controllerPod(true), "--kube-api-qps=5")}, OK, "default API client rate"},
		{"fresh lease of a controller outside pods", false, []runtime.Object{lease("kube-system", "host-1", 3*time.Second)}, OK, "held by host-1, renewed 3s ago"},
		{"stale lease: controller stopped", false, []runtime.Object{lease("kube-system", "host-1", 40*time.Second)}, Fail, "renewed 40s ago (lease duration 15s): the controller is not running"},
		{"released lease", false, []runtime.Object{lease("default", "", time.Second)}, Fail, "has no holder"},
		{"pod not ready", false, []runtime.Object{controllerPod(false)}, Fail, "ImagePullBackOff"},
		{"ready pod wins over a stale lease", false, []runtime.Object{controllerPod(true), lease("kube-system", "old", time.Hour)}, OK, "ready"},
		{"nothing found", false, nil, Warn, "no pod labelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := cluster(t, tc.noSnapshots, tc.objs...)
			got := checkSnapshotController(context.Background(), d, &Config{})
			if len(got) != 1 || got[0].Status != tc.want || !strings.Contains(got[0].Detail, tc.detail) {
				t.Fatalf("got %+v, want %s with %q", got, tc.want, tc.detail)
			}
			if strings.Contains(tc.name, "raised") && strings.Contains(got[0].Detail, "API client rate") {
				t.Errorf("a controller at --kube-api-qps 50 is not at the default rate: %q", got[0].Detail)
			}
		})
	}
	if got := checkSnapshotController(context.Background(), cluster(t, true), &Config{}); len(got) != 0 {
		t.Errorf("without the snapshot API the controller is not judged, got %+v", got)
	}
}

func TestSnapshotAPI(t *testing.T) {
	for _, tc := range []struct {
		name        string
		noSnapshots bool
		mode        volumes.Mode
		want        Status
	}{
		{"served", false, volumes.ModeAuto, OK},
		{"missing, auto falls back to fs", true, volumes.ModeAuto, Warn},
		{"missing, snapshot-move needs it", true, volumes.ModeSnapshotMove, Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkSnapshotAPI(context.Background(), cluster(t, tc.noSnapshots), &Config{Mode: tc.mode})
			if got[0].Status != tc.want {
				t.Fatalf("got %+v, want %s", got, tc.want)
			}
		})
	}
}

func storageClass(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
}

func vsc(name, drv string, def bool) *snapv1.VolumeSnapshotClass {
	c := &snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Driver: drv, DeletionPolicy: snapv1.VolumeSnapshotContentDelete}
	if def {
		c.Annotations = map[string]string{volumes.AnnotationDefaultClass: "true"}
	}
	return c
}

func TestStorage(t *testing.T) {
	installed := []runtime.Object{
		storageClass("fast", driver), storageClass("gone", "missing.csi.example.com"), storageClass("intree", "kubernetes.io/aws-ebs"),
		&storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver}, Spec: storagev1.CSIDriverSpec{FSGroupPolicy: ptr.To(storagev1.FileFSGroupPolicy)}},
		&storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: driver, NodeID: "node-1"}}}},
	}
	for _, tc := range []struct {
		name    string
		classes []string
		vscs    []*snapv1.VolumeSnapshotClass
		flag    []string
		mode    volumes.Mode
		want    map[string]Status // check → status
		detail  map[string]string // check → part of its detail
	}{
		{name: "a class of a driver that is not installed", classes: []string{"gone"},
			want:   map[string]Status{"storage class gone": Fail},
			detail: map[string]string{"storage class gone": "provisioner missing.csi.example.com is not installed"}},
		{name: "an in-tree class goes to fs", classes: []string{"intree"}, want: map[string]Status{"storage class intree": OK}},
		{name: "a class that does not exist", classes: []string{"nope"}, want: map[string]Status{"storage class nope": Fail}},
		{name: "the default VolumeSnapshotClass is chosen", classes: []string{"fast"}, vscs: []*snapv1.VolumeSnapshotClass{vsc("snap", driver, true)},
			want:   map[string]Status{"storage class fast": OK, "snapshot class for " + driver: OK},
			detail: map[string]string{"snapshot class for " + driver: "VolumeSnapshotClass snap (the driver's default class)", "storage class fast": "fsGroupPolicy File, registered on 1 node"}},
		{name: "only a class of another driver: auto uses fs", classes: []string{"fast"}, vscs: []*snapv1.VolumeSnapshotClass{vsc("other", "other.csi.example.com", true)},
			want:   map[string]Status{"snapshot class for " + driver: Warn},
			detail: map[string]string{"snapshot class for " + driver: "VolumeSnapshotClass other is for driver other.csi.example.com"}},
		{name: "--snapshot-class of another driver with snapshot-move", classes: []string{"fast"}, flag: []string{"other"}, mode: volumes.ModeSnapshotMove,
			vscs:   []*snapv1.VolumeSnapshotClass{vsc("other", "other.csi.example.com", false), vsc("snap", driver, true)},
			want:   map[string]Status{"snapshot class for " + driver: Fail},
			detail: map[string]string{"snapshot class for " + driver: "--snapshot-class other is for driver other.csi.example.com, not " + driver}},
		{name: "--snapshot-class that does not exist", classes: []string{"fast"}, flag: []string{"typo"},
			vscs: []*snapv1.VolumeSnapshotClass{vsc("snap", driver, true)}, want: map[string]Status{"snapshot class for " + driver: Fail}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := cluster(t, false, installed...)
			for _, c := range tc.vscs {
				if _, err := d.Snap.SnapshotV1().VolumeSnapshotClasses().Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]Result{}
			for _, r := range checkStorage(context.Background(), d, &Config{StorageClasses: tc.classes, SnapshotClasses: tc.flag, Mode: tc.mode}) {
				got[r.Check] = r
			}
			for check, want := range tc.want {
				if got[check].Status != want || !strings.Contains(got[check].Detail, tc.detail[check]) {
					t.Errorf("%s: got %+v, want %s with %q", check, got[check], want, tc.detail[check])
				}
			}
		})
	}
}

// TestRightsOfNamespaceAdmin: a user with every namespaced right but those on VolumeSnapshots and
// no cluster-scoped one (the `admin` ClusterRole bound in their namespace) passes for fs backups
// and restores into their namespace; for snapshots, doctor prints the exact Role and ClusterRole
// to grant; in auto mode their lack is a warning (volumes go through fs).
func TestRightsOfNamespaceAdmin(t *testing.T) {
	admin := func() (*Deps, *[]authzv1.ResourceAttributes) {
		d := cluster(t, false)
		var denied []string
		for _, r := range Rights {
			if r.Cluster || r.Group == snapGroup {
				denied = append(denied, r.Verb+" "+r.Resource)
			}
		}
		return d, allow(d, denied...)
	}
	statuses := func(rs []Result) map[string]Result {
		m := map[string]Result{}
		for _, r := range rs {
			m[r.Check] = r
		}
		return m
	}
	d, _ := admin()
	got := statuses(checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}, Mode: volumes.ModeFS}))
	// The cluster objects the namespace's refer to (PVs, StorageClasses, CRDs) are left out of
	// the backup with a warning: doctor warns likewise, and fails nothing.
	if got["rights in shop"].Status != OK || got["rights (cluster)"].Status != Warn ||
		!strings.Contains(got["rights (cluster)"].Detail, "left out with a warning") || len(got) != 2 {
		t.Errorf("fs backup: %+v", got)
	}
	d, _ = admin()
	got = statuses(checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"restore"}, Mode: volumes.ModeFS}))
	if c := got["rights (cluster)"]; c.Status != Warn || !strings.Contains(c.Detail, "needed only for restore into namespaces that do not exist") {
		t.Errorf("restore: %+v", got)
	}
	d, _ = admin()
	got = statuses(checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}, Mode: volumes.ModeSnapshotMove}))
	ns, cl := got["rights in shop"], got["rights (cluster)"]
	if ns.Status != Fail || cl.Status != Fail {
		t.Fatalf("snapshot-move: %+v", got)
	}
	wantRole := `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kubectl-pvbackup
  namespace: shop
rules:
- apiGroups:
  - snapshot.storage.k8s.io
  resources:
  - volumesnapshots
  verbs:
  - create
  - delete
  - get
  - list
  - watch
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kubectl-pvbackup
  namespace: shop
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kubectl-pvbackup
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: YOUR-USER
`
	if ns.Grant != wantRole {
		t.Errorf("Role to grant:\n%s\nwant:\n%s", ns.Grant, wantRole)
	}
	for _, want := range []string{"kind: ClusterRole\n", "  - volumesnapshotclasses\n  verbs:\n  - list\n", "  - volumesnapshotcontents\n  verbs:\n  - get\n  - patch\n", "  - persistentvolumes\n  verbs:\n  - get\n  - patch\n"} {
		if !strings.Contains(cl.Grant, want) {
			t.Errorf("ClusterRole to grant lacks %q:\n%s", want, cl.Grant)
		}
	}
	d, _ = admin()
	got = statuses(checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}, Mode: volumes.ModeAuto}))
	if c := got["rights in shop"]; c.Status != Warn || !strings.Contains(c.Detail, "without them, volumes go through fs") || c.Grant == "" {
		t.Errorf("auto: %+v", got)
	}
}

// allow answers SelfSubjectAccessReviews: allowed unless the verb+resource is in denied.
func allow(d *Deps, denied ...string) *[]authzv1.ResourceAttributes {
	var asked []authzv1.ResourceAttributes
	no := map[string]bool{}
	for _, x := range denied {
		no[x] = true
	}
	d.Kube.(*fake.Clientset).PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authzv1.SelfSubjectAccessReview)
		ra := *r.Spec.ResourceAttributes
		asked = append(asked, ra)
		r.Status.Allowed = !no[ra.Verb+" "+ra.Resource]
		return true, r, nil
	})
	return &asked
}

func TestRights(t *testing.T) {
	d := cluster(t, false)
	asked := allow(d, "create jobs", "create volumesnapshots")
	got := checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"create"}})
	byCheck := map[string]Result{}
	for _, r := range got {
		byCheck[r.Check] = r
	}
	shop := byCheck["rights in shop"]
	if shop.Status != Fail || !strings.Contains(shop.Detail, "create jobs.batch (create, restore: mover Jobs)") || !strings.Contains(shop.Detail, "create volumesnapshots.snapshot.storage.k8s.io") {
		t.Errorf("rights in shop: %+v", shop)
	}
	if !strings.Contains(shop.Fix, "in namespace shop (the Role and RoleBinding below)") {
		t.Errorf("fix: %q", shop.Fix)
	}
	if !strings.Contains(shop.Grant, "kind: Role\nmetadata:\n  name: kubectl-pvbackup\n  namespace: shop\nrules:\n- apiGroups:\n  - batch\n  resources:\n  - jobs\n  verbs:\n  - create\n") {
		t.Errorf("grant:\n%s", shop.Grant)
	}
	if c := byCheck["rights (cluster)"]; c.Status != OK {
		t.Errorf("cluster rights: %+v", c)
	}
	for _, ra := range *asked {
		if ra.Verb == "create" && ra.Resource == "namespaces" {
			t.Error("create's check asked for restore's right to create namespaces")
		}
		if ra.Resource == "jobs" && ra.Namespace != "shop" {
			t.Errorf("jobs asked in namespace %q", ra.Namespace)
		}
	}

	// create's plan lists ConfigMaps only: no right on Secrets is asked for.
	d = cluster(t, false)
	asked = allow(d, "list secrets", "list configmaps")
	got = checkRights(context.Background(), d, &Config{Namespaces: []string{"shop"}, Commands: []string{"resources"}, Resources: []string{"configmaps", "deployments.apps"}})
	if r := got[len(got)-1]; r.Status != Fail || !strings.Contains(r.Detail, "list configmaps") || strings.Contains(r.Detail, "secrets") {
		t.Errorf("a plan of configmaps: %+v", r)
	}
	var lists []string
	for _, ra := range *asked {
		if ra.Verb == "list" && ra.Namespace == "shop" {
			lists = append(lists, ra.Resource)
		}
	}
	sort.Strings(lists) // asked concurrently
	if strings.Join(lists, ",") != "configmaps,deployments" {
		t.Errorf("list rights asked for %v, want those of the plan's types", lists)
	}

	// Many namespaces: the first ones are checked, and the report says so.
	d = cluster(t, false)
	allow(d)
	var many []string
	for i := 0; i < maxRightsNamespaces+3; i++ {
		many = append(many, fmt.Sprintf("ns%02d", i))
	}
	got = checkRights(context.Background(), d, &Config{Namespaces: many, Commands: []string{"create"}})
	if len(got) != 2+maxRightsNamespaces || got[1].Status != Warn || !strings.Contains(got[1].Detail, "first 10 of 13") {
		t.Errorf("many namespaces: %d results, %+v", len(got), got[1])
	}

	// A backup of every namespace needs the rights cluster-wide.
	d = cluster(t, false)
	allow(d)
	got = checkRights(context.Background(), d, &Config{AllNamespaces: true, Commands: []string{"restore"}})
	if got[len(got)-1].Check != "rights in all namespaces" || got[len(got)-1].Status != OK {
		t.Errorf("all namespaces: %+v", got)
	}
}

func moverConfig(privileged bool) volumes.MoverConfig {
	mc := volumes.MoverConfig{Image: "mover:1", Privileged: privileged}
	mc.Defaults()
	return mc
}

func TestAdmission(t *testing.T) {
	restricted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{labelEnforce: "restricted"}}}
	small := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "small", Namespace: "shop"},
		Spec:   corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"requests.memory": resource.MustParse("128Mi")}},
		Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{"requests.memory": resource.MustParse("128Mi")}, Used: corev1.ResourceList{"requests.memory": resource.MustParse("64Mi")}}}
	forbid := func(msg string) func(k8stesting.Action) (bool, runtime.Object, error) {
		return func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "pvb-doctor-x", errors.New(msg))
		}
	}
	for _, tc := range []struct {
		name       string
		privileged bool
		reactor    func(k8stesting.Action) (bool, runtime.Object, error)
		objs       []runtime.Object
		want       map[string]Status
		detail     string
	}{
		{name: "admitted", objs: []runtime.Object{restricted}, want: map[string]Status{"pod security in shop": OK, "resource quota in shop": OK}},
		{name: "privileged mover in a restricted namespace", privileged: true, objs: []runtime.Object{restricted},
			reactor: forbid(`violates PodSecurity "restricted:latest": runAsNonRoot != true`),
			want:    map[string]Status{"pod security in shop": Fail}, detail: `violates PodSecurity "restricted:latest"`},
		{name: "quota too small", objs: []runtime.Object{restricted, small},
			reactor: forbid("exceeded quota: small, requested: requests.memory=256Mi, used: requests.memory=64Mi, limited: requests.memory=128Mi"),
			want:    map[string]Status{"pod security in shop": OK, "resource quota in shop": Fail}, detail: "requests.memory: the mover needs 256Mi, 64Mi of 128Mi free"},
		{name: "no right to dry-run: judged from labels", privileged: true, objs: []runtime.Object{restricted},
			reactor: forbid(`User "x" cannot create resource "pods" in API group "" in the namespace "shop"`),
			want:    map[string]Status{"pod security in shop": Fail}, detail: "judged from the namespace's labels"},
		{name: "a namespace a restore creates", objs: nil, want: map[string]Status{"pod security in shop": OK}, detail: "does not exist yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := cluster(t, false, tc.objs...)
			var dryRun []string
			d.Kube.(*fake.Clientset).PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				dryRun = a.(k8stesting.CreateActionImpl).CreateOptions.DryRun
				if tc.reactor != nil {
					return tc.reactor(a)
				}
				return true, a.(k8stesting.CreateAction).GetObject(), nil
			})
			got := map[string]Result{}
			var details []string
			for _, r := range checkAdmission(context.Background(), d, &Config{Namespaces: []string{"shop"}, Mover: moverConfig(tc.privileged), MoverOp: "backup"}) {
				got[r.Check] = r
				details = append(details, r.Detail)
			}
			for check, want := range tc.want {
				if got[check].Status != want {
					t.Errorf("%s: got %+v, want %s", check, got[check], want)
				}
			}
			if !strings.Contains(strings.Join(details, "\n"), tc.detail) {
				t.Errorf("details %q lack %q", details, tc.detail)
			}
			if tc.objs != nil && (len(dryRun) != 1 || dryRun[0] != metav1.DryRunAll) {
				t.Errorf("the mover pod was created with dryRun %v, want All", dryRun)
			}
		})
	}
}

func TestMoverPodIsTheJobsPod(t *testing.T) {
	mc := moverConfig(true)
	p := MoverPod(&mc, "shop", "backup")
	sc := p.Spec.Containers[0].SecurityContext
	if p.Namespace != "shop" || p.Spec.Containers[0].Image != "mover:1" || p.Spec.SecurityContext.RunAsUser == nil || *p.Spec.SecurityContext.RunAsUser != 0 || len(sc.Capabilities.Add) == 0 {
		t.Errorf("mover pod: %+v", p.Spec)
	}
	if q := p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]; q.String() != "256Mi" {
		t.Errorf("memory request %s, want the mover's default 256Mi", q.String())
	}
}

func TestQuotaNeedsLimits(t *testing.T) {
	mc := moverConfig(false)
	mc.Limits = corev1.ResourceList{} // no limits at all
	q := corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "lim"}, Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{"limits.cpu": resource.MustParse("4")}}}
	r := judgeQuotas("q", []corev1.ResourceQuota{q}, MoverPod(&mc, "ns", "backup"))
	if r.Status != Fail || !strings.Contains(r.Detail, "sets no cpu limit") {
		t.Errorf("got %+v", r)
	}
}

func TestScheduling(t *testing.T) {
	node := func(name string, ready bool, taint bool, mem string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem), corev1.ResourceCPU: resource.MustParse("2")}}}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}
		if taint {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
		}
		return n
	}
	mc := moverConfig(false)
	bad := cluster(t, false, node("a", false, false, "4Gi"), node("b", true, true, "4Gi"), node("c", true, false, "128Mi"))
	got := checkScheduling(context.Background(), bad, &Config{Mover: mc})
	if got[0].Status != Fail || !strings.Contains(got[0].Detail, "a: not Ready") || !strings.Contains(got[0].Detail, "taint dedicated=db:NoSchedule") || !strings.Contains(got[0].Detail, "allocatable memory 128Mi") {
		t.Errorf("got %+v", got)
	}
	good := cluster(t, false, node("a", true, false, "4Gi"))
	if got := checkScheduling(context.Background(), good, &Config{Mover: mc}); got[0].Status != OK {
		t.Errorf("got %+v", got)
	}
}

// TestLocation: the password unwraps the location's key (a wrong one fails, a missing one warns,
// a new location has none yet), and each existing repository of a namespace in scope is opened
// with that namespace's derived key, never with the password.
func TestLocation(t *testing.T) {
	keyring.SetTestCost()
	ctx := context.Background()
	dir := t.TempDir()
	loc, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Create(ctx, loc, "right")
	_ = loc.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"shop", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, "kopia", ns), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kopia", ns, "kopia.repository"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A location whose key file was replaced (another key under the same password) while its
	// repositories stayed: their keys no longer derive from the key.
	replaced := t.TempDir()
	if loc, err := store.Open(ctx, "file://"+replaced); err != nil {
		t.Fatal(err)
	} else if _, err := keyring.Create(ctx, loc, "right"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(replaced, "kopia", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(replaced, "kopia", "shop", "kopia.repository"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A location whose key file was deleted: the copy kept with its backup opens it.
	lost := t.TempDir()
	if b, err := os.ReadFile(filepath.Join(dir, "keys", "location.age")); err != nil {
		t.Fatal(err)
	} else if err := os.MkdirAll(filepath.Join(lost, "backups", "b1"), 0o755); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(lost, "backups", "b1", "location.age"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lost, "kopia", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lost, "kopia", "shop", "kopia.repository"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var opened []string
	d := cluster(t, false)
	d.OpenLocation = nil
	d.OpenRepository = func(_ context.Context, _, ns, key string) error {
		opened = append(opened, ns)
		if key != repoPassword(t, kr, ns) {
			return fmt.Errorf("%w for %s", repo.ErrWrongPassword, ns)
		}
		return nil
	}
	keys := func(pw string) func(context.Context, *store.Location) (func(string) (string, error), error) {
		return func(ctx context.Context, loc *store.Location) (func(string) (string, error), error) {
			if pw == "" {
				return nil, password.ErrMissing
			}
			k, err := keyring.Open(ctx, loc, pw)
			if err != nil {
				return nil, err
			}
			if k.Damage != "" { // as the command does
				return k.RepoPassword, fmt.Errorf("%s: %w", k.Damage, keyring.ErrDamaged)
			}
			return k.RepoPassword, nil
		}
	}
	for _, tc := range []struct {
		name, location, password string
		want                     Status
		check, detail            string
		opened                   string
	}{
		{"right password", dir, "right", OK, checkRepos, "each namespace's key opens its repository: shop", "shop"},
		{"wrong password", dir, "wrong", Fail, checkKey, "wrong repository password", ""},
		{"no password", dir, "", Warn, checkKey, "no password given", ""},
		{"new location", dir + "/new", "right", OK, checkKey, "no keys/location.age yet", ""},
		{"replaced key file", replaced, "right", Fail, checkRepos, "do not open the repositories of shop: they were made under another location key", "shop"},
		{"deleted key file", lost, "right", Fail, checkKey, "keys/location.age of file://" + lost + " is missing; the location was opened with the copy kept in backups/b1/location.age", "shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opened = nil
			d.Keys = keys(tc.password)
			rep := Run(ctx, *d, Config{Location: "file://" + tc.location, Namespaces: []string{"shop"}}, []Step{{"location", checkLocation}})
			got := map[string]Result{}
			for _, r := range rep.Checks {
				got[r.Check] = r
			}
			if got[checkLocationName].Status != OK || got[checkWritable].Status != OK {
				t.Errorf("location: %+v", rep.Checks)
			}
			if r := got[tc.check]; r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) || rep.Status != tc.want {
				t.Errorf("%s: %+v (report %s), want %s with %q", tc.check, r, rep.Status, tc.want, tc.detail)
			}
			if strings.Join(opened, ",") != tc.opened {
				t.Errorf("opened %v, want %q (the namespaces in scope, once the key is open)", opened, tc.opened)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, ".pvbackup-doctor")); len(entries) != 0 {
		t.Errorf("the writability marker was left behind: %v", entries)
	}
}

func TestReport(t *testing.T) {
	steps := []Step{
		{"a", func(context.Context, *Deps, *Config) []Result { return []Result{ok("a", "fine")} }},
		{"b", func(context.Context, *Deps, *Config) []Result { return []Result{warn("b", "meh", "do b")} }},
	}
	rep := Run(context.Background(), Deps{}, Config{}, steps)
	if rep.Status != Warn || rep.Checks[0].Check != "a" || rep.Checks[1].Check != "b" || rep.Summary() != "b: meh (do b)" {
		t.Errorf("report: %+v, summary %q", rep, rep.Summary())
	}
	steps = append(steps, Step{"c", func(context.Context, *Deps, *Config) []Result { return []Result{fail("c", "broken", "")} }})
	rep = Run(context.Background(), Deps{}, Config{}, steps)
	if rep.Status != Fail || rep.Summary() != "c: broken" {
		t.Errorf("report: %+v, summary %q", rep, rep.Summary())
	}
}

func TestJudgePlan(t *testing.T) {
	vols := []catalog.Volume{
		{Namespace: "shop", PVC: "a", Mode: "snapshot-move"},
		{Namespace: "shop", PVC: "b", Mode: "snapshot-move", Status: catalog.VolumeFailed, Error: "no VolumeSnapshotClass for CSI driver x"},
	}
	r := judgePlan(vols)
	if r[0].Status != Fail || !strings.Contains(r[0].Detail, "PVC shop/b: no VolumeSnapshotClass") {
		t.Errorf("got %+v", r)
	}
	if r := judgePlan(vols[:1]); r[0].Status != OK {
		t.Errorf("got %+v", r)
	}
}

func TestTargetClasses(t *testing.T) {
	d := cluster(t, false, storageClass("gp3", "ebs.csi.aws.com"))
	got := judgeTargetClasses(context.Background(), d, map[string]string{"gp3": "gp2", "standard": "standard"})
	if got[0].Check != "storage class gp3" || got[0].Status != OK || got[1].Status != Fail || !strings.Contains(got[1].Fix, "--storage-class-mapping standard:NEW") {
		t.Errorf("got %+v", got)
	}
}

// The probe's movers run in the probe's own namespace: --mover-secret is copied there from the
// first namespace in scope that has it (labelled, so it goes with the namespace), or the probe
// stops naming where it looked.
func TestProbeCopiesMoverSecret(t *testing.T) {
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: "shop"}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("id"), "AWS_SECRET_ACCESS_KEY": []byte("key")}}
	for _, tc := range []struct {
		name   string
		scope  []string
		want   string
		copied bool
	}{
		{"found in the second namespace", []string{"blog", "shop"}, "Secret shop/s3-creds copied into pvb-doctor-x", true},
		{"in no namespace in scope", []string{"blog"}, "--mover-secret s3-creds is in none of the namespaces in scope (blog)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewSimpleClientset(secret.DeepCopy())
			p := &prober{d: &Deps{Kube: kube}, cfg: &Config{Namespaces: tc.scope, Mover: volumes.MoverConfig{Secret: "s3-creds"}}, id: "x", ns: ProbePrefix + "x"}
			detail, err := p.copySecret(ctx)
			msg := detail
			if err != nil {
				msg = err.Error()
			}
			if !strings.Contains(msg, tc.want) || (err == nil) != tc.copied {
				t.Fatalf("got %q (error %v), want %q", msg, err, tc.want)
			}
			got, err := kube.CoreV1().Secrets(p.ns).Get(ctx, "s3-creds", metav1.GetOptions{})
			if !tc.copied {
				if err == nil {
					t.Error("a Secret was created although none was found")
				}
				return
			}
			if err != nil || string(got.Data["AWS_SECRET_ACCESS_KEY"]) != "key" || got.Labels[volumes.LabelManagedBy] != volumes.ManagedBy {
				t.Errorf("copy %+v, %v", got, err)
			}
		})
	}
}

// TestRightsFor: every right of a need is there once, whichever need names it first.
func TestRightsFor(t *testing.T) {
	cluster, namespaced := RightsFor([]string{"resources", "volumes"})
	has := func(rs []Right, s string) int {
		n := 0
		for _, r := range rs {
			if r.String() == s {
				n++
			}
		}
		return n
	}
	// fs movers read no PV (a namespace admin may not): the PV rights come with snapshots.
	if has(cluster, "get persistentvolumes") != 0 || has(cluster, "get storageclasses.storage.k8s.io") != 0 || has(cluster, "list namespaces") != 0 {
		t.Errorf("cluster rights of resources+volumes: %v", cluster)
	}
	if cluster, _ := RightsFor([]string{"needed-cluster", "snapshots"}); has(cluster, "get persistentvolumes") != 1 || has(cluster, "patch persistentvolumes") != 1 {
		t.Errorf("cluster rights of needed-cluster+snapshots: %v", cluster)
	}
	if has(namespaced, "list pods") != 1 || has(namespaced, "create pods/exec") != 0 {
		t.Errorf("namespaced rights: %v", namespaced)
	}
	_, namespaced = RightsFor([]string{"hooks", "volumes"})
	if has(namespaced, "list pods") != 1 || has(namespaced, "create pods/exec") != 1 {
		t.Errorf("namespaced rights of hooks+volumes: %v", namespaced)
	}
}

// repoPassword derives k's key of namespace ns, failing the test on an error (t.Error: the
// checks call it from goroutines).
func repoPassword(t testing.TB, k *keyring.Keyring, ns string) string {
	t.Helper()
	pw, err := k.RepoPassword(ns)
	if err != nil {
		t.Error(err)
	}
	return pw
}
