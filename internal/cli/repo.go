package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRepoCmd builds the `repo` group: care of the namespace repositories that hold volume data.
func NewRepoCmd(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Care for the Kopia repositories that hold volume data: maintain, status, list",
		Long: `Each source namespace's volume data lives in its own Kopia repository, under kopia/<namespace>/
of the location. These commands run from this machine with the bucket's credentials and the
password; nothing runs in the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewRepoMaintainCmd(streams), NewRepoStatusCmd(streams), NewRepoListCmd(streams))
	return cmd
}
