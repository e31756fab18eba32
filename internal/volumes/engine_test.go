package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// sim plays the cluster's controllers against fake clientsets: a snapshot controller that makes
// VolumeSnapshots ready (or fails them), and a Job controller + kubelet that runs each mover Job's
// pod to the end the test chooses.
type sim struct {
	t    *testing.T
	kube *fake.Clientset
	snap *snapfake.Clientset

	snapshotError string // set status.error instead of readyToUse
	noController  bool   // leave VolumeSnapshots without status
	podWaiting    string // leave the container waiting with this reason
	podMessage    string // ... and this message (default: a pull back-off's)
	podPullRetry  bool   // ... then back off and retry, as a kubelet does after a failed pull
	jobEvent      string // emit this Warning event on the Job instead of creating a pod
	oom           bool
	moverError    string // the mover fails with this error (result.error, exit 1)

	mu   sync.Mutex
	jobs []*batchv1.Job
}

// snapFake is the external-snapshotter fake, which (generated before WatchList existed) does not
// say that it cannot stream lists the way client-go's own fakes do.
type snapFake struct{ *snapfake.Clientset }

func (snapFake) IsWatchListSemanticsUnSupported() bool { return true }

func newSim(t *testing.T, objs ...runtime.Object) *sim {
	s := &sim{t: t, kube: fake.NewSimpleClientset(objs...), snap: snapfake.NewSimpleClientset(
		&snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "dir", Annotations: map[string]string{AnnotationDefaultClass: "true"}}, Driver: "dir.csi", DeletionPolicy: snapv1.VolumeSnapshotContentRetain},
	)}
	// The fake discovery serves the snapshot group when told to.
	s.kube.Resources = append(s.kube.Resources, &metav1.APIResourceList{GroupVersion: snapv1.SchemeGroupVersion.String(), APIResources: []metav1.APIResource{{Name: "volumesnapshots", Namespaced: true, Kind: "VolumeSnapshot"}}})
	return s
}

func (s *sim) run(ctx context.Context) {
	vsw, err := s.snap.SnapshotV1().VolumeSnapshots("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	jw, err := s.kube.BatchV1().Jobs("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	go func() {
		for ev := range vsw.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			vs := ev.Object.(*snapv1.VolumeSnapshot).DeepCopy()
			if s.noController {
				continue
			}
			content := "snapcontent-" + vs.Name
			vs.Status = &snapv1.VolumeSnapshotStatus{BoundVolumeSnapshotContentName: &content}
			if s.snapshotError != "" {
				vs.Status.Error = &snapv1.VolumeSnapshotError{Message: ptr.To(s.snapshotError)}
			} else {
				vs.Status.ReadyToUse = ptr.To(true)
				vs.Status.RestoreSize = ptr.To(resource.MustParse("1Gi"))
				_, _ = s.snap.SnapshotV1().VolumeSnapshotContents().Create(ctx, &snapv1.VolumeSnapshotContent{
					ObjectMeta: metav1.ObjectMeta{Name: content},
					Spec:       snapv1.VolumeSnapshotContentSpec{DeletionPolicy: snapv1.VolumeSnapshotContentRetain, Driver: "dir.csi"},
					Status:     &snapv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("handle-" + vs.Name), ReadyToUse: ptr.To(true)},
				}, metav1.CreateOptions{})
			}
			go s.resync(ctx, func() bool {
				cur, err := s.snap.SnapshotV1().VolumeSnapshots(vs.Namespace).Get(ctx, vs.Name, metav1.GetOptions{})
				if err != nil {
					return false
				}
				cur.Status = vs.Status
				_, err = s.snap.SnapshotV1().VolumeSnapshots(vs.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
				return err == nil
			})
		}
	}()
	go func() {
		for ev := range jw.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			j := ev.Object.(*batchv1.Job)
			s.mu.Lock()
			s.jobs = append(s.jobs, j.DeepCopy())
			s.mu.Unlock()
			if s.jobEvent != "" {
				n := 0
				go s.resync(ctx, func() bool {
					if _, err := s.kube.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{}); err != nil {
						return false
					}
					n++
					_, _ = s.kube.CoreV1().Events(j.Namespace).Create(ctx, &corev1.Event{
						ObjectMeta:     metav1.ObjectMeta{Name: j.Name + "." + strconv.Itoa(n), Namespace: j.Namespace},
						InvolvedObject: corev1.ObjectReference{Kind: "Job", Namespace: j.Namespace, Name: j.Name, UID: j.UID},
						Type:           corev1.EventTypeWarning, Reason: "FailedCreate", Message: s.jobEvent, Count: int32(n),
					}, metav1.CreateOptions{})
					return true
				})
				continue
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x1", Namespace: j.Namespace, Labels: j.Spec.Template.Labels, UID: types.UID(j.Name + "-pod")},
				Spec:       j.Spec.Template.Spec,
				Status:     corev1.PodStatus{Phase: corev1.PodPending},
			}
			p, err := s.kube.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				continue
			}
			if s.podWaiting != "" {
				msg := "Back-off pulling image \"" + p.Spec.Containers[0].Image + "\""
				if s.podMessage != "" {
					msg = s.podMessage
				}
				waits := []corev1.ContainerStateWaiting{{Reason: s.podWaiting, Message: msg}}
				if s.podPullRetry {
					waits = append(waits, corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image: ErrImagePull: " + msg}, waits[0])
				}
				s.podWaits(ctx, p, waits)
				continue
			}
			op := j.Spec.Template.Spec.Containers[0].Args[0]
			res := mover.Result{Op: op, OK: true, SnapshotID: "k" + j.Name, Files: 3, Bytes: 1000, UploadedBytes: 900, DurationSeconds: 0.1}
			for _, e := range j.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "PVBACKUP_PVC" {
					res.PVC = e.Value
				}
			}
			term := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", Message: string(mover.MarshalResult(&res))}
			phase := corev1.PodSucceeded
			if s.moverError != "" {
				res.OK, res.Error = false, s.moverError
				term = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: string(mover.MarshalResult(&res))}
				phase = corev1.PodFailed
			}
			if s.oom {
				term = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}
				phase = corev1.PodFailed
			}
			p.Status = corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{Terminated: term}}}}
			s.resyncPod(ctx, p)
		}
	}()
}

// resync calls apply every 50 ms until it returns false or ctx ends: fake clientsets replay nothing
// to a watch started after a change, so the simulated controllers re-apply their status, as real
// controllers resync.
func (s *sim) resync(ctx context.Context, apply func() bool) {
	for ctx.Err() == nil && apply() {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// podWaits leaves p's container waiting in each state in turn, 300 ms each, the last one for good.
func (s *sim) podWaits(ctx context.Context, p *corev1.Pod, waits []corev1.ContainerStateWaiting) {
	go func() {
		for i, w := range waits {
			end := time.Now().Add(300 * time.Millisecond)
			s.resync(ctx, func() bool {
				cur, err := s.kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
				if err != nil {
					return false
				}
				cur.Status.Phase = corev1.PodPending
				cur.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{Waiting: &w}}}
				_, err = s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
				return err == nil && (i == len(waits)-1 || time.Now().Before(end))
			})
		}
	}()
}

func (s *sim) resyncPod(ctx context.Context, p *corev1.Pod) {
	go s.resync(ctx, func() bool {
		cur, err := s.kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cur.Status = p.Status
		_, err = s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err == nil
	})
}

func boundClaim(name, pv string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: pv, AccessModes: modes, StorageClassName: ptr.To("dir-sc"),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
}

func testConfig(mode Mode) Config {
	return Config{Backup: "b1", Mode: mode, RunID: "r0001", Parallel: 2, Timeout: 5 * time.Second, ControllerTimeout: time.Second, ErrorGrace: 500 * time.Millisecond,
		Mover: MoverConfig{Image: "mover:test", Location: "s3://bucket/prefix", RepoPassword: repoKey, Env: map[string]string{"AWS_ACCESS_KEY_ID": "k"}}}
}

// leftovers lists every object the engine may have left, labelled or not.
func leftovers(t *testing.T, s *sim) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	jobs, _ := s.kube.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		out = append(out, "job/"+j.Name)
	}
	secrets, _ := s.kube.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	for _, x := range secrets.Items {
		out = append(out, "secret/"+x.Name)
	}
	pods, _ := s.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: Selector("")})
	for _, x := range pods.Items {
		out = append(out, "pod/"+x.Name)
	}
	pvcs, _ := s.kube.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{LabelSelector: Selector("")})
	for _, x := range pvcs.Items {
		out = append(out, "pvc/"+x.Name)
	}
	vss, _ := s.snap.SnapshotV1().VolumeSnapshots("").List(ctx, metav1.ListOptions{})
	for _, x := range vss.Items {
		out = append(out, "volumesnapshot/"+x.Name)
	}
	return out
}

func TestBackupSnapshotMove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), boundClaim("logs", "pv2"), csiPV("pv1", "dir.csi"), csiPV("pv2", "dir.csi"))
	s.run(ctx)
	claims := []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1"), boundClaim("logs", "pv2")}
	var events sync.Map
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), OnEvent: func(ns, pvc string, ev mover.Event) { events.Store(pvc, ev) }}, testConfig(ModeAuto), claims)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 {
		t.Fatalf("%d volumes", len(vols))
	}
	for _, v := range vols {
		if v.Status != catalog.VolumeCompleted {
			t.Fatalf("%s: %s %s", v.PVC, v.Status, v.Error)
		}
		if v.Mode != string(ModeSnapshotMove) || v.SnapshotClass != "dir" || !strings.Contains(v.Reason, "dir.csi has VolumeSnapshotClass dir") {
			t.Errorf("%s: mode %s class %s reason %q", v.PVC, v.Mode, v.SnapshotClass, v.Reason)
		}
		tk := Task{Backup: "b1", Op: "backup", Namespace: "app", PVC: v.PVC, Run: "r0001"}
		if v.KopiaSnapshot != "k"+tk.JobName() || v.Files != 3 || v.Bytes != 1000 || v.UploadedBytes != 900 {
			t.Errorf("%s: result not taken from the termination message: %+v", v.PVC, v)
		}
		if v.SnapshotHandle != "handle-"+tk.SnapshotName() {
			t.Errorf("%s: snapshot handle %q", v.PVC, v.SnapshotHandle)
		}
		if len(v.Warnings) > 0 {
			t.Errorf("%s: warnings %q", v.PVC, v.Warnings)
		}
	}
	// The movers mounted the temporary claims, read-only.
	s.mu.Lock()
	for _, j := range s.jobs {
		vol := j.Spec.Template.Spec.Volumes[0]
		if !strings.HasPrefix(vol.PersistentVolumeClaim.ClaimName, "pvb-tmp-b1-") || !vol.PersistentVolumeClaim.ReadOnly {
			t.Errorf("job %s mounts %+v", j.Name, vol.PersistentVolumeClaim)
		}
	}
	s.mu.Unlock()
	if l := leftovers(t, s); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
	// VolumeSnapshotContents were switched to Delete before their snapshots went.
	contents, _ := s.snap.SnapshotV1().VolumeSnapshotContents().List(ctx, metav1.ListOptions{})
	for _, c := range contents.Items {
		if c.Spec.DeletionPolicy != snapv1.VolumeSnapshotContentDelete {
			t.Errorf("content %s kept deletionPolicy %s", c.Name, c.Spec.DeletionPolicy)
		}
	}
}

func TestBackupFailsFast(t *testing.T) {
	tests := []struct {
		name  string
		mode  Mode
		setup func(*sim)
		want  string
	}{
		{name: "snapshot error", mode: ModeSnapshotMove, setup: func(s *sim) { s.snapshotError = "driver refused: no space" }, want: "failed: driver refused: no space"},
		{name: "no snapshot controller", mode: ModeSnapshotMove, setup: func(s *sim) { s.noController = true }, want: "no snapshot controller seems to run"},
		{name: "image pull", mode: ModeFS, setup: func(s *sim) { s.podWaiting = "ImagePullBackOff" }, want: "ImagePullBackOff: Back-off pulling image \"mover:test\""},
		{name: "pod security", mode: ModeFS, setup: func(s *sim) { s.jobEvent = `pods "x" is forbidden: violates PodSecurity "restricted:latest"` }, want: "FailedCreate: pods \"x\" is forbidden: violates PodSecurity"},
		{name: "oom", mode: ModeFS, setup: func(s *sim) { s.oom = true }, want: "OOMKilled (memory limit 2Gi): raise --mover-memory-limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"))
			tc.setup(s)
			s.run(ctx)
			start := time.Now()
			vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(tc.mode), []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1")})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %s: the failure should end the wait at once", d)
			}
			if vols[0].Status != catalog.VolumeFailed || !strings.Contains(vols[0].Error, tc.want) {
				t.Fatalf("status %s error %q, want Failed with %q", vols[0].Status, vols[0].Error, tc.want)
			}
			if l := leftovers(t, s); len(l) != 0 {
				t.Errorf("left behind after failure: %v", l)
			}
		})
	}
}

func TestBackupFSPlacement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0"},
		Spec: corev1.PodSpec{NodeName: "node-7", Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	rwop := boundClaim("solo", "pv3", corev1.ReadWriteOncePod)
	soloUser := user.DeepCopy()
	soloUser.Name, soloUser.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "solo-0", "solo"
	s := newSim(t, user, soloUser, boundClaim("data", "pv1"), boundClaim("idle", "pv2"), rwop)
	s.run(ctx)
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeFS),
		[]*corev1.PersistentVolumeClaim{boundClaim("data", "pv1"), boundClaim("idle", "pv2"), rwop})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]catalog.Volume{}
	for _, v := range vols {
		got[v.PVC] = v
	}
	if got["data"].Status != catalog.VolumeCompleted || got["idle"].Status != catalog.VolumeCompleted {
		t.Fatalf("fs backups: %+v", vols)
	}
	if v := got["solo"]; v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "ReadWriteOncePod and in use by pod solo-0") {
		t.Errorf("RWOP in use: %s %q", v.Status, v.Error)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		spec := j.Spec.Template.Spec
		claim := spec.Volumes[0].PersistentVolumeClaim
		switch claim.ClaimName {
		case "data":
			terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			if terms[0].MatchFields[0].Values[0] != "node-7" || len(spec.Tolerations) != 1 {
				t.Errorf("mover of an RWO volume in use is not on the pod's node: %+v %+v", spec.Affinity, spec.Tolerations)
			}
		case "idle":
			if spec.Affinity != nil {
				t.Errorf("mover of an unmounted volume is pinned: %+v", spec.Affinity)
			}
		default:
			t.Errorf("unexpected mover for %s", claim.ClaimName)
		}
		if !claim.ReadOnly || !spec.Containers[0].VolumeMounts[0].ReadOnly {
			t.Errorf("fs mover mounts %s read-write", claim.ClaimName)
		}
	}
}

func TestCleanupLeftovers(t *testing.T) {
	ctx := context.Background()
	tk := Task{Backup: "b1", Op: "backup", Namespace: "app", PVC: "data"}
	other := Task{Backup: "b2", Op: "backup", Namespace: "app", PVC: "data"}
	c := &MoverConfig{Image: "i", Location: "s3://b", RepoPassword: repoKey}
	c.Defaults()
	kept := tk.SnapshotSpec("dir", true)
	kept.Name = tk.KeptSnapshotName()
	s := newSim(t, secretSpec(t, tk, c), tk.JobSpec(c, "data", "", Placement{}), secretSpec(t, other, c),
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-tmp"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain}})
	tmp := tk.TempPVCSpec(boundClaim("data", "pv1"), nil, nil)
	tmp.Spec.VolumeName = "pv-tmp"
	if _, err := s.kube.CoreV1().PersistentVolumeClaims("app").Create(ctx, tmp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, vs := range []*snapv1.VolumeSnapshot{tk.SnapshotSpec("dir", false), kept} {
		if _, err := s.snap.SnapshotV1().VolumeSnapshots("app").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := Leftovers(ctx, s.kube, s.snap, "b1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Kind)
	}
	if strings.Join(names, ",") != "Job,PersistentVolumeClaim,VolumeSnapshot,Secret" {
		t.Fatalf("leftovers of b1: %v", objs)
	}
	if err := Delete(ctx, s.kube, s.snap, objs); err != nil {
		t.Fatal(err)
	}
	if again, _ := Leftovers(ctx, s.kube, s.snap, "b1"); len(again) != 0 {
		t.Errorf("still there: %v", again)
	}
	pv, _ := s.kube.CoreV1().PersistentVolumes().Get(ctx, "pv-tmp", metav1.GetOptions{})
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("temporary PV keeps reclaim policy %s", pv.Spec.PersistentVolumeReclaimPolicy)
	}
	if k, _ := KeptSnapshots(ctx, s.snap, "b1"); len(k) != 1 || k[0].Name != kept.Name {
		t.Errorf("kept snapshots: %v", k)
	}
	if o, _ := Leftovers(ctx, s.kube, s.snap, "b2"); len(o) != 1 {
		t.Errorf("another backup's objects were touched: %v", o)
	}
}

func TestJobSpecSecurity(t *testing.T) {
	tk := Task{Backup: "nightly-2026-11-25", Op: "backup", Namespace: "shop", SourceNamespace: "shop", PVC: strings.Repeat("very-long-claim-name-", 4), Run: NewRunID()}
	c := &MoverConfig{Image: "img", Location: "s3://b/p", RepoPassword: repoKey, Files: map[string][]byte{"GOOGLE_APPLICATION_CREDENTIALS": []byte("{}")}}
	c.Defaults()
	j := tk.JobSpec(c, "claim", "", Placement{})
	for _, n := range []string{j.Name, tk.SecretName(), tk.TempPVCName(), tk.SnapshotName(), tk.KeptSnapshotName()} {
		if len(n) > 63 {
			t.Errorf("name %q is %d characters", n, len(n))
		}
	}
	ps := j.Spec.Template.Spec
	sc := ps.Containers[0].SecurityContext
	if !*ps.SecurityContext.RunAsNonRoot || *ps.SecurityContext.RunAsUser != DefaultMoverUID || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		*sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("not Pod Security restricted: %+v %+v", ps.SecurityContext, sc)
	}
	if *j.Spec.BackoffLimit != 0 || *j.Spec.ActiveDeadlineSeconds != 6*3600 || *j.Spec.TTLSecondsAfterFinished != 3600 {
		t.Errorf("job limits: %v %v %v", *j.Spec.BackoffLimit, *j.Spec.ActiveDeadlineSeconds, *j.Spec.TTLSecondsAfterFinished)
	}
	if j.Labels[LabelManagedBy] != ManagedBy || j.Labels[LabelBackup] != tk.Backup || ps.Containers[0].Resources.Requests.Cpu().String() != "100m" {
		t.Errorf("labels %v resources %v", j.Labels, ps.Containers[0].Resources)
	}
	env := map[string]string{}
	for _, e := range ps.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["PVBACKUP_SOURCE"] != "/tmp/data" || env["PVBACKUP_LOCATION"] != "s3://b/p" || env["GOOGLE_APPLICATION_CREDENTIALS"] != mountCreds+"/GOOGLE_APPLICATION_CREDENTIALS" || env["PVBACKUP_PASSWORD"] != "" {
		t.Errorf("env %v", env)
	}
	// The repository key is only in the Secret, and it is the source namespace's.
	b, _ := json.Marshal(j)
	if strings.Contains(string(b), keyOf("shop")) {
		t.Error("the Job spec holds the repository key")
	}
	if string(secretSpec(t, tk, c).Data[passwordKey]) != keyOf("shop") {
		t.Error("the Secret lacks the repository key")
	}
	// Restore as root restores owners; the default skips them.
	r := Task{Backup: "b", Op: "restore", Namespace: "n", SourceNamespace: "old", PVC: "p"}
	rj := r.JobSpec(c, "p", "kid", Placement{})
	renv := map[string]string{}
	for _, e := range rj.Spec.Template.Spec.Containers[0].Env {
		renv[e.Name] = e.Value
	}
	if renv["PVBACKUP_SKIP_OWNERS"] != "true" || renv["PVBACKUP_SNAPSHOT"] != "kid" || renv["PVBACKUP_SOURCE_NAMESPACE"] != "old" || rj.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly {
		t.Errorf("restore env %v", renv)
	}
	if fg := rj.Spec.Template.Spec.SecurityContext.FSGroup; fg == nil || *fg != DefaultMoverUID {
		t.Errorf("a non-root restore cannot write a root-owned volume without fsGroup: %v", fg)
	}
	if j.Spec.Template.Spec.SecurityContext.FSGroup != nil {
		t.Error("a backup mover must not set fsGroup: the kubelet could re-own the live volume")
	}
	// From a kept VolumeSnapshot: the temporary claim made from it is mounted read-only, the mover
	// told to restore from there, and no Kopia snapshot is named.
	k := Task{Backup: "b", Op: "restore", Namespace: "n", SourceNamespace: "n", PVC: "p", Sync: true, FromSnapshot: "keep-1"}
	kj := k.JobSpec(c, "p", "", Placement{})
	kenv := map[string]string{}
	for _, e := range kj.Spec.Template.Spec.Containers[0].Env {
		kenv[e.Name] = e.Value
	}
	if _, named := kenv["PVBACKUP_SNAPSHOT"]; named || kenv["PVBACKUP_FROM_DIR"] != mountSource || kenv["PVBACKUP_SYNC"] != "true" {
		t.Errorf("restore from a kept snapshot: env %v", kenv)
	}
	var src *corev1.Volume
	for i, v := range kj.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == k.TempPVCName() {
			src = &kj.Spec.Template.Spec.Volumes[i]
		}
	}
	if src == nil || !src.PersistentVolumeClaim.ReadOnly {
		t.Errorf("the claim made from the kept snapshot is not mounted read-only: %+v", kj.Spec.Template.Spec.Volumes)
	}
	if ds := k.TempPVCSpec(&corev1.PersistentVolumeClaim{}, nil, nil).Spec.DataSource; ds == nil || ds.Name != "keep-1" {
		t.Errorf("temporary claim's data source %+v, want VolumeSnapshot keep-1", ds)
	}
	c.Privileged = true
	pj := r.JobSpec(c, "p", "kid", Placement{})
	if *pj.Spec.Template.Spec.SecurityContext.RunAsUser != 0 || len(pj.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add) == 0 {
		t.Errorf("privileged mover: %+v", pj.Spec.Template.Spec.SecurityContext)
	}
}

func TestKeepSnapshots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"))
	// Older kept snapshots of the same PVC (two by this tool, one by someone else).
	for i, name := range []string{"old-1", "old-2", "foreign"} {
		vs := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, CreationTimestamp: metav1.NewTime(time.Now().Add(time.Duration(i-10) * time.Hour)),
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelKept: "true", LabelSourcePVC: "data", LabelBackup: "older"}}}
		if name == "foreign" {
			vs.Labels = map[string]string{"app": "x"}
		}
		if _, err := s.snap.SnapshotV1().VolumeSnapshots("app").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.run(ctx)
	cfg := testConfig(ModeSnapshot)
	cfg.KeepSnapshots = 2
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg, []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1")})
	if err != nil {
		t.Fatal(err)
	}
	v := vols[0]
	tk := Task{Backup: "b1", PVC: "data", Run: "r0001"}
	if v.Status != catalog.VolumeCompleted || v.VolumeSnapshot != tk.KeptSnapshotName() || v.KopiaSnapshot != "" {
		t.Fatalf("%+v", v)
	}
	list, _ := s.snap.SnapshotV1().VolumeSnapshots("app").List(ctx, metav1.ListOptions{})
	var names []string
	for _, x := range list.Items {
		names = append(names, x.Name)
	}
	got := strings.Join(names, ",")
	if strings.Contains(got, "old-1") || !strings.Contains(got, "old-2") || !strings.Contains(got, "foreign") || !strings.Contains(got, v.VolumeSnapshot) {
		t.Errorf("after --keep-snapshots 2: %s", got)
	}
	if len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "deleted older VolumeSnapshot old-1") {
		t.Errorf("warnings %q", v.Warnings)
	}
}

// Ctrl-C while waiting: the wait ends at once and what was created is deleted, the snapshots
// requested ahead for the volumes whose turn never came included.
func TestBackupInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"), boundClaim("logs", "pv2"), csiPV("pv2", "dir.csi"), boundClaim("cache", "pv3"), csiPV("pv3", "dir.csi"))
	s.noController = true
	s.run(ctx)
	cfg := testConfig(ModeSnapshotMove)
	cfg.ControllerTimeout = time.Minute
	cfg.Parallel = 1
	go func() {
		time.Sleep(300 * time.Millisecond)
		cancel(interruption{})
	}()
	start := time.Now()
	claims := []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1"), boundClaim("logs", "pv2"), boundClaim("cache", "pv3")}
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg, claims)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s after Ctrl-C", d)
	}
	if len(vols) != 3 {
		t.Fatalf("%d volumes", len(vols))
	}
	for _, v := range vols {
		// The volume table and describe say why, as the signal's cause words it.
		if v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "interrupted (Ctrl-C)") || strings.Contains(v.Error, "context canceled") {
			t.Errorf("%s: %s %q", v.PVC, v.Status, v.Error)
		}
	}
	if l := leftovers(t, s); len(l) != 0 {
		t.Errorf("left behind after Ctrl-C: %v", l)
	}
}

// interruption stands for cli.Interruption, the cause a signal cancels the run with.
type interruption struct{}

func (interruption) Error() string        { return "interrupted (Ctrl-C)" }
func (interruption) Is(target error) bool { return target == context.Canceled }

// repoKey stands for keyring.RepoPassword (internal/keyring tests the real one).
func repoKey(ns string) (string, error) { return "key-of-" + ns, nil }

// keyOf is repoKey's key of namespace ns.
func keyOf(ns string) string { return "key-of-" + ns }

// secretSpec is t's temporary Secret under c.
func secretSpec(tb testing.TB, t Task, c *MoverConfig) *corev1.Secret {
	tb.Helper()
	s, err := t.SecretSpec(c)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestSecretCarriesOneNamespaceKey: the temporary Secret holds the key of the repository the
// mover opens (the source namespace's on a mapped restore) and nothing else secret; with
// --mover-secret the storage credentials come from the user's Secret, the key still from ours.
func TestSecretCarriesOneNamespaceKey(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}
	for _, tc := range []struct {
		name       string
		task       Task
		userSecret string
		wantKeys   []string
	}{
		{"backup", Task{Backup: "b", Op: "backup", Namespace: "a", SourceNamespace: "a", PVC: "p"}, "", []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", passwordKey}},
		{"mapped restore", Task{Backup: "b", Op: "restore", Namespace: "a-copy", SourceNamespace: "a", PVC: "p"}, "", []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", passwordKey}},
		{"mover-secret", Task{Backup: "b", Op: "backup", Namespace: "a", SourceNamespace: "a", PVC: "p"}, "mine", []string{passwordKey}},
		{"doctor's probe", Task{Backup: "doctor-x", Op: "probe", Namespace: "a", SourceNamespace: "a", PVC: "p", ProbeToken: "t"}, "", []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", passwordKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &MoverConfig{Image: "i", Location: "s3://b/p", RepoPassword: repoKey, Env: env, Secret: tc.userSecret}
			c.Defaults()
			s := secretSpec(t, tc.task, c)
			var keys []string
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != strings.Join(tc.wantKeys, ",") {
				t.Errorf("Secret keys %v, want %v", keys, tc.wantKeys)
			}
			if got := string(s.Data[passwordKey]); got != keyOf("a") {
				t.Errorf("Secret in %s holds key %q, want the source namespace's %q", tc.task.Namespace, got, keyOf("a"))
			}
			var from []string
			for _, e := range tc.task.JobSpec(c, "p", "", Placement{}).Spec.Template.Spec.Containers[0].EnvFrom {
				from = append(from, e.SecretRef.Name)
			}
			want := []string{tc.task.SecretName()}
			if tc.userSecret != "" {
				want = []string{tc.userSecret, tc.task.SecretName()} // ours last: it wins
			}
			if strings.Join(from, ",") != strings.Join(want, ",") {
				t.Errorf("envFrom %v, want %v", from, want)
			}
		})
	}
}

// A block volume's mover maps the claims as devices (none mounted), is told so, and runs as root
// without any capability: the device node belongs to root.
func TestJobSpecBlock(t *testing.T) {
	c := &MoverConfig{Image: "img", Location: "s3://b/p", RepoPassword: repoKey}
	c.Defaults()
	env := func(p corev1.PodSpec) map[string]string {
		m := map[string]string{}
		for _, e := range p.Containers[0].Env {
			m[e.Name] = e.Value
		}
		return m
	}
	b := Task{Backup: "b", Op: "backup", Namespace: "n", SourceNamespace: "n", PVC: "disk", Block: true}
	ps := b.JobSpec(c, "tmp", "", Placement{}).Spec.Template.Spec
	ct := ps.Containers[0]
	if len(ct.VolumeDevices) != 1 || ct.VolumeDevices[0].Name != "data" || ct.VolumeDevices[0].DevicePath != deviceData {
		t.Errorf("devices %+v, want data at %s", ct.VolumeDevices, deviceData)
	}
	for _, m := range ct.VolumeMounts {
		if m.Name == "data" {
			t.Errorf("the block claim is also mounted: %+v", ct.VolumeMounts)
		}
	}
	if e := env(ps); e["PVBACKUP_BLOCK"] != "true" || e["PVBACKUP_SOURCE"] != deviceData {
		t.Errorf("backup env %v", e)
	}
	if !ps.Volumes[0].PersistentVolumeClaim.ReadOnly {
		t.Error("a block backup maps its claim writable")
	}
	sc := ct.SecurityContext
	if *ps.SecurityContext.RunAsUser != 0 || *ps.SecurityContext.RunAsNonRoot || ps.SecurityContext.FSGroup != nil ||
		*sc.RunAsNonRoot || len(sc.Capabilities.Add) != 0 || sc.Capabilities.Drop[0] != "ALL" || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("block mover security %+v %+v; want root without capabilities", ps.SecurityContext, sc)
	}
	k := Task{Backup: "b", Op: "restore", Namespace: "n", SourceNamespace: "n", PVC: "disk", FromSnapshot: "keep-1", Block: true}
	ks := k.JobSpec(c, "disk", "", Placement{}).Spec.Template.Spec
	if d := ks.Containers[0].VolumeDevices; len(d) != 2 || d[1].DevicePath != deviceSource {
		t.Errorf("restore from a kept snapshot: devices %+v", d)
	}
	if e := env(ks); e["PVBACKUP_TARGET"] != deviceData || e["PVBACKUP_FROM_DIR"] != deviceSource || e["PVBACKUP_BLOCK"] != "true" {
		t.Errorf("restore env %v", e)
	}
}

// TestJobSpecReadOnlyRepository: restore movers of another tool's repository (Velero's) are told
// to open it read-only; a backup mover never is, and nor is a restore of our own.
func TestJobSpecReadOnlyRepository(t *testing.T) {
	envOf := func(c *MoverConfig, op string) map[string]string {
		c.Defaults()
		tk := Task{Backup: "b", Op: op, Namespace: "n", SourceNamespace: "old", PVC: "p"}
		env := map[string]string{}
		for _, e := range tk.JobSpec(c, "p", "kid", Placement{}).Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		return env
	}
	if env := envOf(&MoverConfig{Image: "img", Location: "s3://velero/lab", ReadOnlyRepository: true}, "restore"); env["PVBACKUP_READ_ONLY"] != "true" {
		t.Errorf("Velero restore env %v", env)
	}
	if env := envOf(&MoverConfig{Image: "img", Location: "s3://b/p"}, "restore"); env["PVBACKUP_READ_ONLY"] != "" {
		t.Errorf("own restore env %v", env)
	}
	if env := envOf(&MoverConfig{Image: "img", Location: "s3://b/p", ReadOnlyRepository: true}, "backup"); env["PVBACKUP_READ_ONLY"] != "" {
		t.Errorf("backup env %v", env)
	}
}
