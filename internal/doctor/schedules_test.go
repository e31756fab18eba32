package doctor

import (
	"context"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func scheduleCronJob(ns, name, secret string) *batchv1.CronJob {
	c := corev1.Container{Name: "create", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}}
	return &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ScheduleLabel: ns + "." + name},
		Annotations: map[string]string{ScheduleNeedsAnnot: "resources,volumes", ScheduleNamespacesAnnot: "shop,web"}},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ServiceAccountName: "pvbackup-" + name, InitContainers: []corev1.Container{c}, Containers: []corev1.Container{c}}}}}}}
}

// TestSchedules: doctor finds the labelled CronJobs, asks a SubjectAccessReview per right for
// their ServiceAccount in each backed-up namespace, names what is missing, and checks the Secret.
func TestSchedules(t *testing.T) {
	other := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: "ops"}}
	elsewhere := scheduleCronJob("elsewhere", "unrelated", "s")
	elsewhere.Annotations[ScheduleNamespacesAnnot] = "other"
	noPassword := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pvbackup-weekly", Namespace: "ops"}, Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("k")}}
	good := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pvbackup-nightly", Namespace: "ops"}, Data: map[string][]byte{SchedulePasswordKey: []byte("pw"), "AWS_ACCESS_KEY_ID": []byte("k")}}
	d := cluster(t, false, scheduleCronJob("ops", "nightly", "pvbackup-nightly"), scheduleCronJob("ops", "weekly", "pvbackup-weekly"),
		scheduleCronJob("ops", "monthly", "missing"), other, elsewhere, noPassword, good)
	var asked []authzv1.SubjectAccessReviewSpec
	d.Kube.(*fake.Clientset).PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		asked = append(asked, r.Spec)
		ra := r.Spec.ResourceAttributes
		// weekly's Role in web lacks secrets.
		r.Status.Allowed = !(r.Spec.User == "system:serviceaccount:ops:pvbackup-weekly" && ra.Namespace == "web" && ra.Resource == "secrets" && ra.Verb == "create")
		return true, r, nil
	})
	got := map[string]Result{}
	for _, r := range checkSchedules(context.Background(), d, &Config{Namespaces: []string{"shop"}}) {
		got[r.Check] = r
	}
	for check, want := range map[string]struct {
		status Status
		detail string
	}{
		"schedule ops/nightly in shop": {OK, "rights checked"},
		"schedule ops/nightly in web":  {OK, "rights checked"},
		"schedule ops/nightly: secret": {OK, "Secret ops/pvbackup-nightly holds PVBACKUP_PASSWORD and 1 other keys"},
		"schedule ops/weekly in web":   {Fail, "missing as system:serviceaccount:ops:pvbackup-weekly: create secrets (create, restore: the movers' temporary Secret)"},
		"schedule ops/weekly: secret":  {Fail, "Secret ops/pvbackup-weekly has no PVBACKUP_PASSWORD"},
		"schedule ops/monthly: secret": {Fail, "Secret ops/missing does not exist"},
		"schedule ops/monthly in shop": {OK, ""},
	} {
		if r, ok := got[check]; !ok || r.Status != want.status || !strings.Contains(r.Detail, want.detail) {
			t.Errorf("%s: %+v, want %s with %q", check, r, want.status, want.detail)
		}
	}
	if r := got["schedule ops/weekly in web"]; !strings.Contains(r.Fix, "kubectl pvbackup schedule print weekly again") {
		t.Errorf("fix: %q", r.Fix)
	}
	for _, a := range asked {
		if len(a.Groups) != 3 || a.Groups[1] != "system:serviceaccounts:ops" {
			t.Fatalf("asked without the ServiceAccount's groups: %+v", a)
		}
	}
	for c := range got {
		if strings.Contains(c, "unrelated") {
			t.Errorf("a CronJob without the label, or of other namespaces, was checked: %s", c)
		}
	}

	// A caller who may not ask about others is told so, not given a false verdict.
	d = cluster(t, false, scheduleCronJob("ops", "nightly", "pvbackup-nightly"))
	d.Kube.(*fake.Clientset).PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, "", nil)
	})
	for _, r := range checkSchedules(context.Background(), d, &Config{Namespaces: []string{"ops"}}) {
		if strings.HasSuffix(r.Check, "secret") {
			continue
		}
		if r.Status != Warn || !strings.Contains(r.Detail, "you may not create SubjectAccessReviews to ask for system:serviceaccount:ops:pvbackup-nightly") {
			t.Errorf("%s: %+v", r.Check, r)
		}
	}
}

// TestSchedulePullSecrets: a schedule's imagePullSecrets (schedule print --mover-pull-secret)
// must exist, and its ServiceAccount must be allowed to get that Secret by name (create copies
// it to the movers); a schedule without volumes does not need the right.
func TestSchedulePullSecrets(t *testing.T) {
	withPull := func(name, pull, needs string) *batchv1.CronJob {
		cj := scheduleCronJob("ops", name, "pvbackup-"+name)
		cj.Annotations[ScheduleNeedsAnnot] = needs
		cj.Spec.JobTemplate.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pull}}
		return cj
	}
	reg := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ops"}, Type: corev1.SecretTypeDockerConfigJson}
	}
	d := cluster(t, false, withPull("nightly", "regcred", "resources,volumes"), withPull("weekly", "gone", "resources,volumes"),
		withPull("monthly", "private", "resources,volumes"), withPull("hourly", "private", "resources"), reg("regcred"), reg("private"))
	d.Kube.(*fake.Clientset).PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		// Only nightly may get its pull Secret, by name; every other right is there.
		r.Status.Allowed = ra.Resource != "secrets" || ra.Verb != "get" || (ra.Name == "regcred" && r.Spec.User == "system:serviceaccount:ops:pvbackup-nightly")
		return true, r, nil
	})
	got := map[string]Result{}
	for _, r := range checkSchedules(context.Background(), d, &Config{Namespaces: []string{"ops"}}) {
		got[r.Check] = r
	}
	for check, want := range map[string]struct {
		status Status
		detail string
	}{
		"schedule ops/nightly: pull secret regcred": {OK, "may get Secret ops/regcred to copy it to the movers"},
		"schedule ops/weekly: pull secret gone":     {Fail, "Secret ops/gone does not exist"},
		"schedule ops/monthly: pull secret private": {Fail, "system:serviceaccount:ops:pvbackup-monthly may not get Secret ops/private"},
	} {
		if r, ok := got[check]; !ok || r.Status != want.status || !strings.Contains(r.Detail, want.detail) {
			t.Errorf("%s: %+v, want %s with %q", check, r, want.status, want.detail)
		}
	}
	if r, ok := got["schedule ops/hourly: pull secret private"]; ok {
		t.Errorf("a schedule without volumes needs no right on its pull Secret: %+v", r)
	}
}
