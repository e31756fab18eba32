// Package password finds the repository password. There is no default: a backup tool that
// encrypts with a well-known password protects nothing.
package password

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvPassword names the environment variable that holds the password.
const EnvPassword = "PVBACKUP_PASSWORD"

// ErrMissing is returned when no password was given.
var ErrMissing = errors.New("no repository password: set " + EnvPassword + " or pass --password-file FILE (there is no default password)")

// Load returns the password from file when it is set, else from the environment.
// A trailing newline in the file is not part of the password.
func Load(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		if strings.TrimSpace(p) == "" {
			return "", fmt.Errorf("password file %s holds only white space: that is no password", file)
		}
		return p, nil
	}
	if p := os.Getenv(EnvPassword); p != "" {
		if strings.TrimSpace(p) == "" {
			return "", fmt.Errorf("%s holds only white space: that is no password", EnvPassword)
		}
		return p, nil
	}
	return "", ErrMissing
}

// FileWarning says, as ssh does for keys, when a password file can be read by others than its
// owner ("" when it cannot, or when it cannot be checked).
func FileWarning(file string) string {
	if file == "" {
		return ""
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("warning: password file %s is accessible by group or others (mode %04o): anyone who can read it can decrypt every backup; chmod 600 %s", file, st.Mode().Perm(), file)
}
