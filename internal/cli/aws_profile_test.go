package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mover Secret carries only the AWS profile in use (every profile of the shared credentials
// file was copied), and AWS_PROFILE with it.
func TestMoverSecretCarriesOnlyTheProfileInUse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "credentials")
	_ = os.WriteFile(file, []byte(`[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = defaultsecret

[prod-admin]
aws_access_key_id = ADMINKEY
aws_secret_access_key = adminsecret

[backup]
aws_access_key_id = BACKUPKEY
aws_secret_access_key = backupsecret
`), 0o600)
	for k := range map[string]bool{"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	for _, tc := range []struct {
		profile, want, envProfile string
	}{
		{"", "DEFAULTKEY", ""},
		{"backup", "BACKUPKEY", "backup"},
	} {
		t.Setenv("AWS_PROFILE", tc.profile)
		o := &moverOptions{Image: "img", PullPolicy: "IfNotPresent", Parallel: 1, RunAs: -1, FSGroup: -1}
		c, err := o.config("s3://b/p")
		if err != nil {
			t.Fatal(err)
		}
		got := string(c.Files["AWS_SHARED_CREDENTIALS_FILE"])
		if !strings.Contains(got, tc.want) || strings.Count(got, "aws_access_key_id") != 1 || strings.Contains(got, "ADMINKEY") {
			t.Errorf("AWS_PROFILE=%q: the Secret's credentials file is\n%s", tc.profile, got)
		}
		if c.Env["AWS_PROFILE"] != tc.envProfile {
			t.Errorf("AWS_PROFILE=%q: the mover gets AWS_PROFILE=%q", tc.profile, c.Env["AWS_PROFILE"])
		}
	}
	// No [default] and no AWS_PROFILE (an empty file, /dev/null): no file goes.
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_PROFILE", "")
	if c, err := (&moverOptions{Image: "img", PullPolicy: "IfNotPresent", Parallel: 1, RunAs: -1, FSGroup: -1}).config("s3://b/p"); err != nil || c.Files != nil {
		t.Errorf("an empty credentials file: %v, files %v", err, c.Files)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	t.Setenv("AWS_PROFILE", "missing")
	o := &moverOptions{Image: "img", PullPolicy: "IfNotPresent", Parallel: 1, RunAs: -1, FSGroup: -1}
	if _, err := o.config("s3://b/p"); err == nil || !strings.Contains(err.Error(), "has no profile [missing]") {
		t.Errorf("a profile the file lacks: %v", err)
	}
}
