// Package kube builds the Kubernetes clients the engines use from a REST config (cli turns kubectl's
// standard flags into one), and holds the waits they share.
package kube

import (
	"fmt"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Clients are the typed, dynamic and discovery clients of one cluster.
type Clients struct {
	Config    *rest.Config
	Typed     kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Snap      snapclient.Interface
	// Context is the kubeconfig context in use ("" when not from a kubeconfig), for manifests.
	Context string
}

// FromConfig builds clients from a REST config. Listing and creating thousands of objects is
// the main job, so there is no client-side rate limit unless the config sets one: the engines
// bound how many requests they have in flight (a restore creates 16 objects at a time), and the
// apiserver's priority and fairness throttles clients by its own load. kubectl apply is in effect
// unthrottled too: it makes a new REST client, with a rate limiter of its own, for each object.
// client-go's default of 5 QPS (and the 50 QPS this plugin had) made a restore of 2,200 objects
// five times slower than kubectl apply.
func FromConfig(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1 // client-go: no rate limiter
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	snap, err := snapclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create VolumeSnapshot client: %w", err)
	}
	return &Clients{Config: cfg, Typed: typed, Dynamic: dyn, Discovery: typed.Discovery(), Snap: snap}, nil
}
