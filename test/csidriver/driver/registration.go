package driver

import (
	"context"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registration is one kubelet's plugin registration service (what node-driver-registrar does):
// it sends that kubelet to its node's endpoint.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	d    *Driver
	node *Node
}

func registerRegistration(srv *grpc.Server, d *Driver, node *Node) {
	registerapi.RegisterRegistrationServer(srv, &registration{d: d, node: node})
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.d.cfg.Name,
		Endpoint:          r.node.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		r.d.cfg.Logger.Printf("registered with the kubelet of %s", r.node.ID)
	} else {
		r.d.cfg.Logger.Printf("the kubelet of %s refused registration: %s", r.node.ID, s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
