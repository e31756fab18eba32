package cli

import (
	"bufio"
	"io"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// TestSchedulePrintGolden: what schedule print prints for a namespaced schedule with keep rules,
// one of every namespace with hooks and a time zone, and a gs:// location, compared as a whole.
func TestSchedulePrintGolden(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	t.Setenv(EnvMoverImage, "")
	nowhere := []string{"--kubeconfig", filepath.Join(t.TempDir(), "missing")}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"cli/schedule-nightly.golden", []string{"nightly", "-n", "pvbackup", "--include-namespaces", "shop,web", "--cron", "0 2 * * *",
			"--to", "s3://backups/prod?region=eu-west-1", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12",
			"--exclude-resources", "events", "--volumes", "snapshot-move", "--mover-image", "registry.example/pvbackup-mover:v1", "--labels", "env=prod"}},
		{"cli/schedule-all-namespaces.golden", []string{"weekly", "-A", "-n", "ops", "--cron", "@weekly", "--time-zone", "Europe/Paris",
			"--to", "azblob://backups/cluster", "--volumes", "fs", "--pre-hook", "sync; sleep 1", "--ttl", "2160h", "--history-limit", "1"}},
		{"cli/schedule-gs.golden", []string{"db", "-n", "db", "--cron", "30 1 * * 1-5", "--to", "gs://backups/db", "--volumes", "none",
			"--include-resources", "configmaps,secrets"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := run(t, append(append([]string{"schedule", "print"}, tc.args...), nowhere...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Assert(t, tc.golden, []byte(out))
			checkDocuments(t, out)
		})
	}
}

// TestSchedulePrintMoverImage: the CronJob runs the image its create passes to the movers:
// --mover-image, else $PVBACKUP_MOVER_IMAGE, else the plugin's own.
func TestSchedulePrintMoverImage(t *testing.T) {
	t.Setenv("PVBACKUP_LOCATION", "")
	args := []string{"schedule", "print", "n", "-n", "x", "--cron", "@daily", "--to", "s3://b/p"}
	for _, tc := range []struct{ env, flag, want string }{
		{"", "", "ghcr.io/kubectl-pvbackup/pvbackup-mover:dev"},
		{"mirror.example/mover:v1", "", "mirror.example/mover:v1"},
		{"mirror.example/mover:v1", "other.example/mover:v2", "other.example/mover:v2"},
	} {
		t.Setenv(EnvMoverImage, tc.env)
		a := args
		if tc.flag != "" {
			a = append(a, "--mover-image", tc.flag)
		}
		out, errOut, code := run(t, a...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if n := strings.Count(out, "image: "+tc.want+"\n"); n != 1 || !strings.Contains(out, "- --mover-image="+tc.want+"\n") {
			t.Errorf("env %q flag %q: image lines %d, want the CronJob and its create on %s:\n%s", tc.env, tc.flag, n, tc.want, out)
		}
	}
}

// checkDocuments decodes every printed document as its kind: the YAML is what kubectl apply reads.
func checkDocuments(t *testing.T, out string) {
	t.Helper()
	d := yaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	kinds := map[string]int{}
	for {
		doc, err := d.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Kind string }
		if err := sigyaml.Unmarshal(doc, &meta); err != nil || meta.Kind == "" {
			if strings.TrimSpace(stripComments(string(doc))) == "" {
				continue // the header
			}
			t.Fatalf("document without a kind (%v):\n%s", err, doc)
		}
		kinds[meta.Kind]++
		switch meta.Kind {
		case "CronJob":
			var cj batchv1.CronJob
			if err := sigyaml.UnmarshalStrict(doc, &cj); err != nil {
				t.Fatalf("CronJob: %v", err)
			}
			if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || *cj.Spec.SuccessfulJobsHistoryLimit < 1 {
				t.Errorf("CronJob spec: %+v", cj.Spec)
			}
		case "Role", "ClusterRole":
			var r rbacv1.ClusterRole
			if err := sigyaml.UnmarshalStrict(doc, &r); err != nil {
				t.Fatalf("%s: %v", meta.Kind, err)
			}
		}
	}
	if kinds["CronJob"] != 1 || kinds["ServiceAccount"] != 1 || kinds["ClusterRole"] != 1 || kinds["Role"] != kinds["RoleBinding"] {
		t.Errorf("kinds: %v", kinds)
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSchedulePrintRefuses: a schedule that cannot work is refused before anything is printed,
// naming the flag.
func TestSchedulePrintRefuses(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	loc := "s3://b/p?region=us-east-1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"n", "-n", "x", "--to", loc}, "--cron is required"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "0 25 * * *"}, `--cron "0 25 * * *": end of range (25) above maximum (23)`},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "0 2 * *"}, `--cron "0 2 * *": expected exactly 5 fields`},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "TZ=UTC 0 2 * * *"}, "give the zone with --time-zone"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--time-zone", "Mars/Olympus"}, `--time-zone "Mars/Olympus": not a time zone`},
		{[]string{"n", "-n", "x", "--to", "file:///var/backups", "--cron", "@daily"}, "which the CronJob's pods cannot reach"},
		{[]string{"n", "-n", "x", "--to", "s3://u:Secret1@b/p", "--cron", "@daily"}, "holds a password"},
		{[]string{"n", "-n", "x", "--cron", "@daily"}, "no backup location"},
		{[]string{"n", "--to", loc, "--cron", "@daily"}, "say what the schedule backs up: --include-namespaces NS[,NS], -n NAMESPACE, or -A"},
		{[]string{"n", "--include-namespaces", "a,b", "--to", loc, "--cron", "@daily"}, "say with -n NAMESPACE where the CronJob goes"},
		{[]string{"n", "-A", "--to", loc, "--cron", "@daily"}, "say with -n NAMESPACE where the CronJob goes"},
		{[]string{"n", "-A", "-n", "x", "--include-namespaces", "a", "--to", loc, "--cron", "@daily"}, "-A backs up every namespace: leave out --include-namespaces"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--dry-run"}, "--dry-run cannot be part of a schedule"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--password-file", "/p"}, "--password-file cannot be part of a schedule: the password comes from the Secret's PVBACKUP_PASSWORD"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--resource-policies", "p.yaml"}, "--resource-policies cannot be part of a schedule"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--generate-name", "x"}, "--generate-name: the schedule's backups are named after it"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--volumes", "fast"}, `--volumes: volume mode "fast"`},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--labels", "Bad Key=x"}, `--labels: key "Bad Key"`},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--keep-daily", "-2"}, "--keep-daily -2: use a count, or -1 for all"},
		{[]string{"n", "-n", "x", "--to", loc, "--cron", "@daily", "--prune-maintenance", "later"}, `--maintenance="later": use quick, full or none`},
		{[]string{"Nightly", "-n", "x", "--to", loc, "--cron", "@daily"}, `--generate-name "Nightly" is not valid`},
		{[]string{strings.Repeat("n", 46), "-n", "x", "--to", loc, "--cron", "@daily"}, "at most 45 characters"},
		{[]string{"n", "-n", strings.Repeat("x", 62), "--to", loc, "--cron", "@daily"}, "the label pvbackup.io/schedule=" + strings.Repeat("x", 62) + ".n is too long"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := run(t, append([]string{"schedule", "print"}, tc.args...)...)
			if code != ExitFailed || !strings.Contains(errOut, tc.want) || out != "" {
				t.Fatalf("exit %d, stdout %d bytes, stderr:\n%s\nwant %q", code, len(out), errOut, tc.want)
			}
			if strings.Contains(errOut, "Secret1") {
				t.Errorf("the secret shows: %s", errOut)
			}
		})
	}
}

// TestSchedulePrintPullSecret: --mover-pull-secret in a schedule is a Secret of the CronJob's
// namespace (its own pod pulls the mover image with it, its create copies it to the movers): the
// pod names it in imagePullSecrets, create is given NAMESPACE/NAME (the pod's kubeconfig
// namespace is not the printer's), and a Role of its own grants get on that Secret only, when
// volumes are moved. A Secret of another namespace is refused.
func TestSchedulePrintPullSecret(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	t.Setenv(EnvMoverImage, "")
	base := []string{"schedule", "print", "nightly", "--include-namespaces", "shop", "--cron", "@daily", "--to", "s3://b/p",
		"--kubeconfig", filepath.Join(t.TempDir(), "missing")}
	for _, tc := range []struct {
		args []string
		role bool
	}{
		{[]string{"-n", "ops", "--mover-pull-secret", "regcred"}, true},
		{[]string{"-n", "ops", "--mover-pull-secret", "ops/regcred"}, true},
		{[]string{"--mover-pull-secret", "regcred"}, true}, // the CronJob goes to shop
		{[]string{"-n", "ops", "--mover-pull-secret", "regcred", "--volumes", "none"}, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := run(t, append(append([]string{}, base...), tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			checkDocuments(t, out)
			ns := "ops"
			if !strings.Contains(strings.Join(tc.args, " "), "-n ops") {
				ns = "shop"
			}
			if !strings.Contains(out, "          imagePullSecrets:\n          - name: regcred\n") {
				t.Errorf("the CronJob's pod does not pull with regcred:\n%s", out)
			}
			if strings.Count(out, "--mover-pull-secret="+ns+"/regcred") != 2 { // header and args
				t.Errorf("create is not given %s/regcred:\n%s", ns, out)
			}
			role := "name: pvbackup-schedule:" + ns + ":nightly:pull-secret\n  namespace: " + ns + "\nrules:\n- apiGroups:\n  - \"\"\n  resourceNames:\n  - regcred\n  resources:\n  - secrets\n  verbs:\n  - get\n"
			if strings.Contains(out, role) != tc.role {
				t.Errorf("the pull Secret's Role there: %v, want %v:\n%s", !tc.role, tc.role, out)
			}
		})
	}
	_, errOut, code := run(t, append(append([]string{}, base...), "-n", "ops", "--mover-pull-secret", "other/regcred")...)
	if code != ExitFailed || !strings.Contains(errOut, "--mover-pull-secret other/regcred: a schedule's pull Secret must be in the CronJob's namespace ops") {
		t.Errorf("a pull Secret of another namespace: exit %d\n%s", code, errOut)
	}
}

// TestSchedulePrintVolumeGroups: a schedule of snapshot modes may cut volume groups, so its Role
// grants the VolumeGroupSnapshot rights; --volume-groups=auto adds patch on
// persistentvolumeclaims (the members' temporary label), and fs grants neither.
func TestSchedulePrintVolumeGroups(t *testing.T) {
	t.Setenv("PVBACKUP_LOCATION", "")
	args := []string{"schedule", "print", "n", "-n", "x", "--cron", "@daily", "--to", "s3://b/p"}
	for _, tc := range []struct {
		flags         []string
		groups, patch bool
		needs         string
	}{
		{[]string{"--volumes", "snapshot-move"}, false, false, "volumes,snapshots\n"},
		{[]string{"--volumes", "snapshot-move", "--volume-group-by", "pvbackup.io/volume-group"}, true, false, "volumes,snapshots,groups\n"},
		{[]string{"--volumes", "auto", "--volume-groups", "auto"}, true, true, "volumes,snapshots,groups,auto-groups\n"},
		{[]string{"--volumes", "fs"}, false, false, "volumes\n"},
	} {
		out, errOut, code := run(t, append(args, tc.flags...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.flags, code, errOut)
		}
		groups := strings.Contains(out, "  - volumegroupsnapshots\n  verbs:\n  - get\n  - watch\n  - create\n  - delete\n") &&
			strings.Contains(out, "  - volumegroupsnapshotcontents\n  verbs:\n  - patch\n")
		patch := strings.Contains(out, "  - persistentvolumeclaims\n  verbs:\n  - get\n  - create\n  - patch\n  - delete\n")
		if groups != tc.groups || patch != tc.patch || !strings.Contains(out, "pvbackup.io/schedule-needs: resources,needed-cluster,"+tc.needs) {
			t.Errorf("%v: group rights %v (want %v), patch persistentvolumeclaims %v (want %v), needs %q:\n%s", tc.flags, groups, tc.groups, patch, tc.patch, tc.needs, out)
		}
	}
}
