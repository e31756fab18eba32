package cli

import (
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profileFromEnv makes PVBACKUP_CPU_PROFILE=FILE write a Go CPU profile of any command's run (the
// mover's in its pod, cp or restore on the laptop) for `make bench` investigations.
func profileFromEnv(root *cobra.Command) {
	var profile *os.File
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		p := os.Getenv("PVBACKUP_CPU_PROFILE")
		if p == "" {
			return nil
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		profile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if profile != nil {
			pprof.StopCPUProfile()
			_ = profile.Close()
		}
	}
}
