package schedule

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// CredentialKeys are the Secret's keys a location's scheme reads (besides PVBACKUP_PASSWORD):
// environment variables, or for gs:// the service account key file GCPCredentialsKey.
func CredentialKeys(scheme string) []string {
	switch scheme {
	case "s3":
		return []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	case "azblob":
		return []string{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"}
	case "gs":
		return []string{GCPCredentialsKey}
	}
	return nil
}

// Print writes the schedule as YAML documents for `kubectl apply -f`, each under a comment, after
// a header that says how to create the Secret (never its values), apply, run once and check.
func Print(w io.Writer, c Config, credentialKeys []string) error {
	var b strings.Builder
	b.WriteString(c.header(credentialKeys))
	for _, o := range c.Objects() {
		y, err := objectYAML(o.Object)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		for _, line := range strings.Split(o.Comment, "\n") {
			if line != "" {
				b.WriteString("# " + line + "\n")
			}
		}
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (c Config) header(keys []string) string {
	var b strings.Builder
	line := func(format string, a ...any) {
		fmt.Fprintln(&b, strings.TrimRight("# "+fmt.Sprintf(format, a...), " "))
	}
	tz := c.TimeZone
	if tz == "" {
		tz = "the cluster's zone, usually UTC"
	}
	line("kubectl pvbackup schedule %s: %q (%s) in namespace %s.", c.Name, c.Cron, tz, c.Namespace)
	line("Printed by kubectl-pvbackup %s; nothing was applied. Its runs:", c.ToolVersion)
	line("  kubectl-pvbackup %s", strings.Join(c.CreateArgs, " "))
	if c.PruneArgs != nil {
		line("  kubectl-pvbackup %s", strings.Join(c.PruneArgs, " "))
	}
	line("")
	line("1. Create the Secret the runs read (this file holds no secret). From a file pvbackup.env, mode 600:")
	line("     PVBACKUP_PASSWORD=<the repository password>")
	env := true
	for _, k := range keys {
		if k == GCPCredentialsKey {
			env = false
			continue
		}
		line("     %s=<...>", k)
	}
	from := "--from-env-file=pvbackup.env"
	if !env {
		from += " --from-file=" + GCPCredentialsKey + "=<service account key file>"
	}
	line("   kubectl -n %s create secret generic %s %s", c.Namespace, c.Secret, from)
	line("   (any other variable the storage SDK reads, e.g. AWS_REGION or AWS_SESSION_TOKEN, can go in too.)")
	if c.PullSecret != "" {
		line("   The pull Secret %s must be in namespace %s too (the CronJob's pod and the movers pull the image with it):", c.PullSecret, c.Namespace)
		line("   kubectl -n %s create secret docker-registry %s --docker-server=<registry> --docker-username=<...> --docker-password=<...>", c.Namespace, c.PullSecret)
	}
	line("2. kubectl apply -f <this file>")
	line("3. Run it once now: kubectl -n %s create job --from=cronjob/%s %s-now", c.Namespace, c.Name, c.Name)
	line("   Follow it:        kubectl -n %s logs -f job/%s-now --all-containers", c.Namespace, c.Name)
	line("4. Check the rights: kubectl pvbackup doctor -n %s  (finds this CronJob by its label %s)", c.Namespace, LabelSchedule)
	line("   Alert when it stops: kubectl pvbackup status --from %s --prefix %s --max-age 26h  (exit 1 when stale)", c.Location, c.Name)
	line("To rotate the password: kubectl pvbackup repo change-password, then replace PVBACKUP_PASSWORD in the Secret (docs/schedules.md).")
	return b.String()
}

// objectYAML is an object as YAML without the fields the API fills in (creationTimestamp,
// status), which would only confuse a reader.
func objectYAML(obj runtime.Object) ([]byte, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	prune(u)
	return yaml.Marshal(u)
}

// prune drops nil values (creationTimestamp: null) and empty status maps, deepest first; other
// empty maps mean something (emptyDir: {}).
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 && k == "status" {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}
