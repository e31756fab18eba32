package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// recorder is a Lister that keeps the options it was called with.
type recorder struct{ list, watch []metav1.ListOptions }

func (r *recorder) List(_ context.Context, o metav1.ListOptions) (*corev1.PodList, error) {
	r.list = append(r.list, o)
	return &corev1.PodList{}, nil
}

func (r *recorder) Watch(_ context.Context, o metav1.ListOptions) (watch.Interface, error) {
	r.watch = append(r.watch, o)
	return watch.NewEmptyWatch(), nil
}

// The selector reaches the server on the list and on the watch, whatever options the caller
// (the reflector) passes, and nil narrows nothing.
func TestListWatchSelectors(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sel           Selector
		field, labels string
	}{
		{"named", Named("data-0"), "metadata.name=data-0", ""},
		{"labelled", Labelled(map[string]string{"app": "db", "tier": "x"}), "", "app=db,tier=x"},
		{"all", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			lw := cache.ToListerWatcherWithContext(ListWatch[*corev1.PodList](r, nil, tc.sel))
			ctx := context.Background()
			if _, err := lw.ListWithContext(ctx, metav1.ListOptions{ResourceVersion: "5"}); err != nil {
				t.Fatal(err)
			}
			w, err := lw.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: "7"})
			if err != nil {
				t.Fatal(err)
			}
			w.Stop()
			for _, o := range append(r.list, r.watch...) {
				if o.FieldSelector != tc.field || o.LabelSelector != tc.labels {
					t.Errorf("options %+v, want field %q labels %q", o, tc.field, tc.labels)
				}
			}
			if len(r.list) != 1 || r.list[0].ResourceVersion != "5" || len(r.watch) != 1 || r.watch[0].ResourceVersion != "7" {
				t.Errorf("list %+v, watch %+v: the caller's options were not kept", r.list, r.watch)
			}
		})
	}
}
