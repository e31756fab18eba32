package cli

import (
	"fmt"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// kubeClients builds the engines' clients from the command line's kubeconfig flags. It lives here,
// not in kube, so that only cli depends on cli-runtime's flag packages (and through them on
// cobra and pflag).
func kubeClients(flags *genericclioptions.ConfigFlags) (*kube.Clients, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := kube.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	if raw, err := flags.ToRawKubeConfigLoader().RawConfig(); err == nil {
		c.Context = raw.CurrentContext
		if flags.Context != nil && *flags.Context != "" {
			c.Context = *flags.Context
		}
	}
	return c, nil
}
