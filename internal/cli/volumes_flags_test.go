package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// --mover-credentials decides whether this machine's storage credentials reach the mover
// Secrets: copy (the default) takes them, identity takes none (the password-derived key alone).
func TestMoverCredentials(t *testing.T) {
	gac := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(gac, []byte(`{"type":"service_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
	t.Setenv("AZURE_STORAGE_KEY", "azure-example")
	t.Setenv("AZURE_STORAGE_ACCOUNT", "backupsaccount")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", gac)
	const loc = "s3://b/p?region=us-east-1"
	for _, tc := range []struct {
		args      []string
		wantCreds bool
		err       string
	}{
		{nil, true, ""},
		{[]string{"--mover-credentials", "copy"}, true, ""},
		{[]string{"--mover-credentials", "identity", "--mover-service-account", "backup-mover"}, false, ""},
		{[]string{"--mover-credentials", "identity"}, false, ""},
		{[]string{"--mover-credentials", "identity", "--mover-secret", "s3-creds"}, false, "choose one"},
		{[]string{"--mover-credentials", "static"}, false, `use copy or identity`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var o moverOptions
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			o.addFlags(fs, nil)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			c, err := o.config(loc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("config = %v; want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.RepoPassword = func(string) (string, error) { return "ns-key", nil }
			s, err := volumes.Task{Backup: "b", Op: "backup", Namespace: "a", SourceNamespace: "a", PVC: "p"}.SecretSpec(&c)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range s.Data {
				keys = append(keys, k)
			}
			has := len(keys) > 1
			if has != tc.wantCreds {
				t.Errorf("mover Secret keys %v; want cloud credentials: %v", keys, tc.wantCreds)
			}
			if !tc.wantCreds && (len(keys) != 1 || string(s.Data[keys[0]]) != "ns-key") {
				t.Errorf("mover Secret %v; want the namespace's key alone", keys)
			}
			// With identity, the pod carries Azure Workload Identity's label and the account's
			// name (not a secret) as plain env; no credential anywhere in the Job.
			job := volumes.Task{Backup: "b", Op: "backup", Namespace: "a", SourceNamespace: "a", PVC: "p"}.JobSpec(&c, "p", "", volumes.Placement{})
			pod := job.Spec.Template
			env := map[string]string{}
			for _, e := range pod.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			identity := !tc.wantCreds
			if (pod.Labels[volumes.AzureIdentityLabel] == "true") != identity || (env["AZURE_STORAGE_ACCOUNT"] == "backupsaccount") != identity {
				t.Errorf("pod labels %v, env %v; identity movers: %v", pod.Labels, env, identity)
			}
			for k, v := range env {
				if strings.Contains(v, "secret-example") || strings.Contains(v, "azure-example") || k == "AWS_SECRET_ACCESS_KEY" {
					t.Errorf("a credential in the Job's env: %s", k)
				}
			}
		})
	}
}
