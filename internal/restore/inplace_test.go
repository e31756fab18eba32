package restore

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/quiesce"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// syncRecorder checks, at fill time, that the workload is stopped.
type syncRecorder struct {
	t        *testing.T
	kube     *fake.Clientset
	items    []volumes.RestoreItem
	fail     bool
	replicas int32
	scaleUp  bool // an autoscaler (or a person) scales the Deployment up during the sync
}

func (s *syncRecorder) Restore(ctx context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error) {
	s.items = append(s.items, items...)
	d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	s.replicas = *d.Spec.Replicas
	if s.scaleUp {
		two := int32(2)
		d.Spec.Replicas = &two
		if _, err := s.kube.AppsV1().Deployments("shop").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
	o := volumes.RestoreOutcome{RestoreItem: items[0], Result: &mover.Result{Files: 2, SkippedFiles: 98, Diff: &mover.Diff{Changed: 2, ChangedBytes: 10}}}
	if s.fail {
		o.Result, o.Err = nil, context.Canceled
	}
	return []volumes.RestoreOutcome{o}, nil
}

func inPlaceCluster() *fake.Clientset {
	three := int32(3)
	return fake.NewSimpleClientset(ns("shop"),
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: "shop"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Replicas: &three,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "shop"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "logs"}}}}}},
	)
}

func TestInPlace(t *testing.T) {
	ctx := context.Background()
	cat := dataCatalog(t)
	replicas := func(kube *fake.Clientset) (int32, map[string]string) {
		d, _ := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return *d.Spec.Replicas, d.Annotations
	}
	for _, fail := range []bool{false, true} {
		kube := inPlaceCluster()
		rec := &syncRecorder{t: t, kube: kube, fail: fail}
		res, err := InPlace(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, ArchiveKey: dataPW})
		if err != nil {
			t.Fatal(err)
		}
		if rec.replicas != 0 || len(rec.items) != 1 || !rec.items[0].Sync || rec.items[0].RequireEmpty {
			t.Errorf("fail=%v: during the sync the Deployment had %d replicas; items %+v", fail, rec.replicas, rec.items)
		}
		if n, ann := replicas(kube); n != 3 || len(ann) != 0 {
			t.Errorf("fail=%v: afterwards %d replicas, annotations %v", fail, n, ann)
		}
		want := Synced
		if fail {
			want = Failed
		}
		if res.Volumes[0].Action != want || (!fail && !strings.Contains(res.Volumes[0].Reason, "Deployment shop/web (3 replicas)")) {
			t.Errorf("fail=%v: %+v", fail, res.Volumes[0])
		}
	}
	// An HPA is named in what was stopped; one that scales the owner up during the sync (the
	// window quiesce.Verify closes) fails the claim, and the owner still goes back as it was.
	t.Run("autoscaler", func(t *testing.T) {
		kube := inPlaceCluster()
		if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers("shop").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web-hpa", Namespace: "shop"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"}, MaxReplicas: 5}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, scaleUp := range []bool{false, true} {
			rec := &syncRecorder{t: t, kube: kube, scaleUp: scaleUp}
			res, err := InPlace(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, ArchiveKey: dataPW})
			if err != nil {
				t.Fatal(err)
			}
			v := res.Volumes[0]
			switch {
			case !scaleUp && (v.Action != Synced || !strings.Contains(v.Reason, "scaled by HorizontalPodAutoscaler web-hpa")):
				t.Errorf("with an HPA: %+v", v)
			case scaleUp && (v.Action != Failed || !strings.Contains(v.Reason, "Deployment shop/web is at 2 replicas, set by HorizontalPodAutoscaler web-hpa")):
				t.Errorf("scaled up during the sync: %+v", v)
			}
			if n, ann := replicas(kube); n != 3 || len(ann) != 0 {
				t.Errorf("scaleUp=%v: afterwards %d replicas, annotations %v", scaleUp, n, ann)
			}
		}
	})
	t.Run("bare pod", func(t *testing.T) {
		kube := inPlaceCluster()
		rec := &syncRecorder{t: t, kube: kube}
		res, _ := InPlace(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/logs"}, ArchiveKey: dataPW})
		if res.Volumes[0].Action != Failed || !strings.Contains(res.Volumes[0].Reason, "pod shop/bare") || len(rec.items) != 0 {
			t.Errorf("%+v, fills %+v", res.Volumes[0], rec.items)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		kube := inPlaceCluster()
		rec := &syncRecorder{t: t, kube: kube}
		res, err := InPlace(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, ArchiveKey: dataPW, DryRun: true})
		if err != nil || res.Volumes[0].Action != WouldSync || !strings.Contains(res.Volumes[0].Reason, "2 changed (10 bytes)") || !rec.items[0].DiffOnly || rec.replicas != 3 {
			t.Errorf("%v %+v, fill %+v, replicas during %d", err, res.Volumes[0], rec.items, rec.replicas)
		}
		if stopped, err := quiesce.Stopped(ctx, kube, ""); err != nil || len(stopped) > 0 {
			t.Fatalf("a dry run left workloads stopped: %v, %v", stopped, err)
		}
	})
}
