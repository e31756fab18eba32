package hooks

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func pod(ann, lbl map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-0", Annotations: ann, Labels: lbl},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}, {Name: "sidecar"}}}}
}

func TestForPod(t *testing.T) {
	sel, _ := labels.Parse("app=db")
	tests := []struct {
		name  string
		pod   *corev1.Pod
		phase string
		flags Flags
		want  *Hook
		err   string
	}{
		{name: "none", pod: pod(nil, nil), phase: Pre},
		{name: "own annotations, JSON command", phase: Pre, pod: pod(map[string]string{
			"pre.hook.pvbackup.io/command": `["/sbin/fsfreeze","--freeze","/data"]`, "pre.hook.pvbackup.io/container": "sidecar",
			"pre.hook.pvbackup.io/on-error": "Continue", "pre.hook.pvbackup.io/timeout": "2m"}, nil),
			want: &Hook{Phase: Pre, Namespace: "ns", Pod: "db-0", Container: "sidecar", Command: []string{"/sbin/fsfreeze", "--freeze", "/data"}, OnError: OnErrorContinue, Timeout: 2 * time.Minute, Source: "hook.pvbackup.io/"}},
		{name: "velero annotations, shell line, first container", phase: Post, pod: pod(map[string]string{"post.hook.backup.velero.io/command": "sync"}, nil),
			want: &Hook{Phase: Post, Namespace: "ns", Pod: "db-0", Container: "db", Command: []string{"/bin/sh", "-c", "sync"}, OnError: OnErrorFail, Timeout: DefaultTimeout, Source: "hook.backup.velero.io/"}},
		{name: "own wins over velero", phase: Pre, pod: pod(map[string]string{"pre.hook.backup.velero.io/command": "velero", "pre.hook.pvbackup.io/command": "mine"}, nil),
			want: &Hook{Phase: Pre, Namespace: "ns", Pod: "db-0", Container: "db", Command: []string{"/bin/sh", "-c", "mine"}, OnError: OnErrorFail, Timeout: DefaultTimeout, Source: "hook.pvbackup.io/"}},
		{name: "annotation wins over flag", phase: Pre, flags: Flags{Pre: "flag"}, pod: pod(map[string]string{"pre.hook.pvbackup.io/command": "mine"}, nil),
			want: &Hook{Phase: Pre, Namespace: "ns", Pod: "db-0", Container: "db", Command: []string{"/bin/sh", "-c", "mine"}, OnError: OnErrorFail, Timeout: DefaultTimeout, Source: "hook.pvbackup.io/"}},
		{name: "flag with matching selector", phase: Pre, flags: Flags{Selector: sel, Pre: "flush", Container: "sidecar"}, pod: pod(nil, map[string]string{"app": "db"}),
			want: &Hook{Phase: Pre, Namespace: "ns", Pod: "db-0", Container: "sidecar", Command: []string{"/bin/sh", "-c", "flush"}, OnError: OnErrorFail, Timeout: DefaultTimeout, Source: "flag"}},
		{name: "flag with other selector", phase: Pre, flags: Flags{Selector: sel, Pre: "flush"}, pod: pod(nil, map[string]string{"app": "web"})},
		{name: "post flag only for post", phase: Pre, flags: Flags{Post: "thaw"}, pod: pod(nil, nil)},
		{name: "bad JSON", phase: Pre, pod: pod(map[string]string{"pre.hook.pvbackup.io/command": `["a",`}, nil), err: "is not a JSON array"},
		{name: "unknown container", phase: Pre, pod: pod(map[string]string{"pre.hook.pvbackup.io/command": "x", "pre.hook.pvbackup.io/container": "nope"}, nil), err: `has no container "nope"`},
		{name: "bad on-error", phase: Pre, pod: pod(map[string]string{"pre.hook.pvbackup.io/command": "x", "pre.hook.pvbackup.io/on-error": "maybe"}, nil), err: "use Fail or Continue"},
		{name: "bad timeout", phase: Pre, pod: pod(map[string]string{"pre.hook.pvbackup.io/command": "x", "pre.hook.pvbackup.io/timeout": "soon"}, nil), err: `timeout "soon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ForPod(tc.pod, tc.phase, tc.flags)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("got %+v\nwant %+v", h, tc.want)
			}
		})
	}
}
