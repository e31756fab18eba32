package kube

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Lister is what a typed client of one resource in one namespace (or a cluster-scoped one)
// offers to list and watch it; L is its list type.
type Lister[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Selector narrows a list and its watch on the server.
type Selector func(*metav1.ListOptions)

// Named keeps the one object called name.
func Named(name string) Selector {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return func(o *metav1.ListOptions) { o.FieldSelector = sel }
}

// Labelled keeps the objects with all of set's labels.
func Labelled(set map[string]string) Selector {
	sel := labels.SelectorFromSet(set).String()
	return func(o *metav1.ListOptions) { o.LabelSelector = sel }
}

// ListWatch lists and watches c's objects that sel keeps (nil: all), for the cache and
// watchtools.UntilWithSync, with client-go's watch-list semantics where client (the clientset c
// came from) supports them.
func ListWatch[L runtime.Object](c Lister[L], client any, sel Selector) cache.ListerWatcher {
	narrow := func(o metav1.ListOptions) metav1.ListOptions {
		if sel != nil {
			sel(&o)
		}
		return o
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.List(ctx, narrow(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, narrow(o))
		},
	}, client)
}
