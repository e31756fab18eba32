package quiesce

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func vol(claim string) []corev1.Volume {
	return []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
}

func ctrl(kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr.To(true)}}
}

func pod(name, claim string, owners []metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", OwnerReferences: owners}, Spec: corev1.PodSpec{Volumes: vol(claim)}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func client() *fake.Clientset {
	return fake.NewSimpleClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(3))}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d", Namespace: "shop", OwnerReferences: ctrl("Deployment", "web")}},
		pod("web-5d-a", "files", ctrl("ReplicaSet", "web-5d")),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2)),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "shop"}, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Volumes: vol("files")}}}}}},
		pod("debug", "scratch", nil),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(1)),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType},
			VolumeClaimTemplates:                 []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}}},
		pod("cache-0", "data-cache-0", ctrl("StatefulSet", "cache")),
	)
}

func TestFind(t *testing.T) {
	ctx := context.Background()
	kube := client()
	for _, tc := range []struct {
		claim, want string
	}{
		{"files", "CronJob shop/report=false Deployment shop/web=3"},
		{"data-db-1", "StatefulSet shop/db=2"},
		{"data-db-x", ""},
	} {
		owners, err := Find(ctx, kube, "shop", tc.claim)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range owners {
			got = append(got, o.String()+"="+o.Original)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("owners of %s: %v, want %s", tc.claim, got, tc.want)
		}
	}
	if _, err := Find(ctx, kube, "shop", "scratch"); !errors.Is(err, ErrBarePod) || !strings.Contains(err.Error(), "pod shop/debug") {
		t.Errorf("bare pod: %v", err)
	}
	// Scaling it to zero would delete the claim being restored.
	if _, err := Find(ctx, kube, "shop", "data-cache-0"); !errors.Is(err, ErrDeletesClaims) || !strings.Contains(err.Error(), "StatefulSet shop/cache has persistentVolumeClaimRetentionPolicy.whenScaled: Delete") {
		t.Errorf("StatefulSet deleting its claims when scaled: %v", err)
	}
}

// Owners go back exactly as they were, also from the annotations alone (a killed run).
func TestStopStart(t *testing.T) {
	ctx := context.Background()
	kube := client()
	if _, err := kube.BatchV1().CronJobs("shop").Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "paused", Namespace: "shop"}, Spec: batchv1.CronJobSpec{Suspend: ptr.To(true)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	owners, err := Find(ctx, kube, "shop", "files")
	if err != nil {
		t.Fatal(err)
	}
	owners = append(owners, Owner{Kind: KindCronJob, Namespace: "shop", Name: "paused", Original: "true"})
	if err := Stop(ctx, kube, owners, "b1"); err != nil {
		t.Fatal(err)
	}
	// A second Stop (a rerun after a kill) must not record zero as the original.
	if err := Stop(ctx, kube, []Owner{{Kind: KindDeployment, Namespace: "shop", Name: "web", Original: "0"}}, "b2"); err != nil {
		t.Fatal(err)
	}
	d, _ := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	cj, _ := kube.BatchV1().CronJobs("shop").Get(ctx, "report", metav1.GetOptions{})
	if *d.Spec.Replicas != 0 || d.Annotations[AnnotationOriginal] != "3" || !*cj.Spec.Suspend || cj.Annotations[AnnotationOriginal] != "false" {
		t.Fatalf("stopped: deployment %v %v, cronjob %v %v", *d.Spec.Replicas, d.Annotations, *cj.Spec.Suspend, cj.Annotations)
	}
	// cleanup --backup b2 must not start what b1's restore stopped (it may be running now).
	if other, err := Stopped(ctx, kube, "b2"); err != nil || len(other) != 0 {
		t.Fatalf("stopped by b2: %v, %v", other, err)
	}
	if all, err := Stopped(ctx, kube, ""); err != nil || len(all) != 3 {
		t.Fatalf("stopped by any: %v, %v", all, err)
	}
	stopped, err := Stopped(ctx, kube, "b1")
	if err != nil || len(stopped) != 3 || stopped[0].StoppedBy != "b1" {
		t.Fatalf("stopped owners %v, %v", stopped, err)
	}
	for i := range stopped {
		stopped[i].Original = "" // only the annotations say what to put back
	}
	if err := Start(ctx, kube, stopped); err != nil {
		t.Fatal(err)
	}
	d, _ = kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	cj, _ = kube.BatchV1().CronJobs("shop").Get(ctx, "report", metav1.GetOptions{})
	paused, _ := kube.BatchV1().CronJobs("shop").Get(ctx, "paused", metav1.GetOptions{})
	if *d.Spec.Replicas != 3 || *cj.Spec.Suspend || !*paused.Spec.Suspend || len(d.Annotations)+len(cj.Annotations)+len(paused.Annotations) != 0 {
		t.Errorf("started: deployment %v %v, report %v %v, paused %v", *d.Spec.Replicas, d.Annotations, *cj.Spec.Suspend, cj.Annotations, *paused.Spec.Suspend)
	}
}

func TestWaitUnmounted(t *testing.T) {
	kube := client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- WaitUnmounted(ctx, kube, "shop", "files", 5*time.Second) }()
	select {
	case err := <-done:
		t.Fatalf("returned while a pod mounts the claim: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := kube.CoreV1().Pods("shop").Delete(ctx, "web-5d-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// An owner's HPA is named; Verify fails, naming it, once something scales a stopped owner up.
func TestAutoscalerAndVerify(t *testing.T) {
	ctx := context.Background()
	kube := client()
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers("shop").Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web-hpa", Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"}, MaxReplicas: 4}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	owners, err := Find(ctx, kube, "shop", "files")
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[0].Autoscaler != "" || owners[1].Autoscaler != "web-hpa" {
		t.Fatalf("owners %+v", owners)
	}
	if err := Stop(ctx, kube, owners, "b1"); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, kube, owners); err != nil {
		t.Fatalf("stopped owners: %v", err)
	}
	if _, err := kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	err = Verify(ctx, kube, owners)
	if !errors.Is(err, ErrRestarted) || !strings.Contains(err.Error(), "Deployment shop/web is at 2 replicas, set by HorizontalPodAutoscaler web-hpa") {
		t.Errorf("scaled up: %v", err)
	}
}

// A pod that never goes fails the wait after the no-progress deadline, naming it.
func TestWaitUnmountedNoProgress(t *testing.T) {
	kube := client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := WaitUnmounted(ctx, kube, "shop", "files", 200*time.Millisecond)
	want := "wait until no pod mounts PVC shop/files: no progress for 200ms; last seen: still: web-5d-a (raise --timeout if this step is just slow)"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %s", err, want)
	}
}
