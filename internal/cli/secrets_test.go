package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"gocloud.dev/blob"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// locationFlags are the flags that take a location URL.
var locationFlags = []string{"to", "from", "location", "mover-location"}

// locationCommands walks the command tree and returns "path flag" for every flag taking a location.
func locationCommands(cmd *cobra.Command, prefix string) []string {
	var out []string
	for _, c := range cmd.Commands() {
		path := strings.TrimSpace(prefix + " " + c.Name())
		for _, f := range locationFlags {
			if c.Flags().Lookup(f) != nil {
				out = append(out, path+" --"+f)
			}
		}
		out = append(out, locationCommands(c, path)...)
	}
	sort.Strings(out)
	return out
}

// TestNoSecretInAnyMessage feeds every secret-bearing form of a location URL through every
// command that takes one, and checks that the secret shows nowhere: stdout, stderr, the mover's
// result file (the Job's termination message, which becomes an event), or the bucket.
func TestNoSecretInAnyMessage(t *testing.T) {
	srv := s3server.Fake(t)
	srv.SetEnv(t)
	t.Setenv("PVBACKUP_PASSWORD", "pw-for-the-test")
	t.Setenv("PVBACKUP_LOCATION", "")
	dir := t.TempDir()
	fileLoc := "file://" + filepath.Join(dir, "bucket")
	s3base := srv.URL("p")
	hostPort := strings.TrimPrefix(srv.Endpoint, "http://")

	forms := []struct{ name, url, secret string }{
		{"s3 query secret key", s3base + "&aws_secret_access_key=Sq1Secret", "Sq1Secret"},
		{"gs access token", "gs://bkt/p?access_token=Sq2Secret", "Sq2Secret"},
		{"azblob sas token", "azblob://c/p?sas_token=Sq3Secret&storage_account=acct", "Sq3Secret"},
		{"endpoint user:pass", fmt.Sprintf("s3://%s/p?region=us-east-1&use_path_style=true&disable_https=true&endpoint=http://u:Sq4Secret@%s", srv.Bucket, hostPort), "Sq4Secret"},
		{"escaped endpoint user:pass", fmt.Sprintf("s3://%s/p?region=us-east-1&use_path_style=true&disable_https=true&endpoint=http%%3A%%2F%%2Fu%%3ASq5Secret%%40%s", srv.Bucket, hostPort), "Sq5Secret"},
		{"bucket user:pass", fmt.Sprintf("s3://u:Sq6Secret@%s/p?region=us-east-1", srv.Bucket), "Sq6Secret"},
		{"malformed escape in a secret", s3base + "&aws_secret_access_key=Sq7Se%zzcret", "Sq7Se"},
		{"malformed escape in a password", "s3://u:Sq8Se%zz@bkt/p", "Sq8Se"},
		{"file with a password", fileLoc + "?password=Sq9Secret", "Sq9Secret"},
	}
	nowhere := []string{"--kubeconfig", filepath.Join(dir, "no-kubeconfig")}
	unreachable := filepath.Join(dir, "unreachable-kubeconfig")
	if err := os.WriteFile(unreachable, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(filepath.Join(dir, "newpw"), []byte("a new password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	commands := map[string]func(u string) []string{
		"create --to":             func(u string) []string { return []string{"create", "b1", "--to", u, "--volumes", "none"} },
		"create --mover-location": func(u string) []string { return []string{"create", "b1", "--to", s3base, "--mover-location", u} },
		"restore --from":          func(u string) []string { return []string{"restore", "b1", "--from", u} },
		"restore --mover-location": func(u string) []string {
			return []string{"restore", "b1", "--from", s3base, "--mover-location", u}
		},
		"velero restore --mover-location": func(u string) []string {
			return []string{"velero", "restore", "b1", "--from-velero", s3base, "--mover-location", u}
		},
		"list --from":   func(u string) []string { return []string{"list", "--from", u, "-o", "json"} },
		"status --from": func(u string) []string { return []string{"status", "--from", u, "--max-age", "1h"} },
		"schedule print --to": func(u string) []string {
			return []string{"schedule", "print", "n", "-n", "x", "--cron", "@daily", "--to", u}
		},
		"schedule print --mover-location": func(u string) []string {
			return []string{"schedule", "print", "n", "-n", "x", "--cron", "@daily", "--to", s3base, "--mover-location", u}
		},
		"describe --from":      func(u string) []string { return []string{"describe", "b1", "--from", u} },
		"logs --from":          func(u string) []string { return []string{"logs", "b1", "--from", u} },
		"delete --from":        func(u string) []string { return []string{"delete", "b1", "--from", u} },
		"ls --from":            func(u string) []string { return []string{"ls", "b1", "--from", u} },
		"cat --from":           func(u string) []string { return []string{"cat", "b1", "ns/p:/f", "--from", u} },
		"cp --from":            func(u string) []string { return []string{"cp", "b1", "ns/p:/", filepath.Join(dir, "cp"), "--from", u} },
		"prune --from":         func(u string) []string { return []string{"prune", "--from", u, "--keep-last", "1"} },
		"verify --from":        func(u string) []string { return []string{"verify", "b1", "--from", u} },
		"repo list --from":     func(u string) []string { return []string{"repo", "list", "--from", u} },
		"repo status --from":   func(u string) []string { return []string{"repo", "status", "--from", u} },
		"repo maintain --from": func(u string) []string { return []string{"repo", "maintain", "--from", u} },
		"repo init --to":       func(u string) []string { return []string{"repo", "init", "--to", u, "--immutable-for", "30d"} },
		"copy --from":          func(u string) []string { return []string{"copy", "b1", "--from", u, "--to", s3base} },
		"copy --to":            func(u string) []string { return []string{"copy", "b1", "--from", s3base, "--to", u} },
		"repo recover --from": func(u string) []string {
			return []string{"repo", "recover", "--from", u, "--as-of", "2026-01-01T00:00:00Z"}
		},
		"repo change-password --from": func(u string) []string {
			return []string{"repo", "change-password", "--from", u, "--new-password-file", filepath.Join(dir, "newpw")}
		},
		"repo export-key --from": func(u string) []string {
			return []string{"repo", "export-key", filepath.Join(dir, "export.age"), "--from", u}
		},
		"repo import-key --from": func(u string) []string {
			return []string{"repo", "import-key", filepath.Join(dir, "newpw"), "--from", u}
		},
		"mover backup --location": func(u string) []string {
			return []string{"mover", "backup", "--location", u, "--source-namespace", "ns", "--pvc", "p", "--source", src, "--result", result}
		},
		// doctor checks the location also when the cluster does not answer.
		"doctor --location": func(u string) []string {
			return []string{"doctor", "-n", "ns", "--kubeconfig", unreachable, "--location", u}
		},
		"doctor --mover-location": func(u string) []string {
			return []string{"doctor", "-n", "ns", "--kubeconfig", unreachable, "--location", s3base, "--mover-location", u, "--probe"}
		},
		"mover probe --location": func(u string) []string {
			return []string{"mover", "probe", "--location", u, "--source-namespace", "ns", "--target", src, "--token", "t", "--result", result}
		},
		"mover restore --location": func(u string) []string {
			return []string{"mover", "restore", "--location", u, "--source-namespace", "ns", "--snapshot", "k1", "--target", filepath.Join(dir, "dst"), "--result", result}
		},
	}
	// Every command that takes a location is in the table: a new one must be added here.
	root := NewRootCmd(context.Background(), genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})
	for _, c := range locationCommands(root, "") {
		if commands[c] == nil {
			t.Errorf("command %q takes a location but is not in this test's table", c)
		}
	}

	for _, f := range forms {
		for name, args := range commands {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				_ = os.Remove(result)
				a := args(f.url)
				if !slices.Contains(a, "--kubeconfig") {
					a = append(a, nowhere...)
				}
				out, errOut, _ := run(t, a...)
				if strings.Contains(out+errOut, f.secret) {
					t.Errorf("the secret shows:\nstdout: %s\nstderr: %s", out, errOut)
				}
				if b, err := os.ReadFile(result); err == nil && strings.Contains(string(b), f.secret) {
					t.Errorf("the mover's result shows the secret: %s", b)
				}
			})
		}
		t.Run(f.name+"/env", func(t *testing.T) {
			t.Setenv(store.EnvLocation, f.url)
			out, errOut, _ := run(t, append([]string{"list"}, nowhere...)...)
			if strings.Contains(out+errOut, f.secret) {
				t.Errorf("the secret shows:\nstdout: %s\nstderr: %s", out, errOut)
			}
		})
	}

	// Nothing any of them wrote holds a secret.
	var stored []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			stored = append(stored, p+"\n"+string(b))
		}
		return nil
	})
	bkt, err := blob.OpenBucket(context.Background(), srv.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	it := bkt.List(nil)
	for {
		obj, err := it.Next(context.Background())
		if err != nil {
			break
		}
		b, _ := bkt.ReadAll(context.Background(), obj.Key)
		stored = append(stored, obj.Key+"\n"+string(b))
	}
	for _, s := range stored {
		for _, f := range forms {
			if strings.Contains(s, f.secret) {
				t.Errorf("stored file holds the secret of %q: %.200s", f.name, s)
			}
		}
	}
}
