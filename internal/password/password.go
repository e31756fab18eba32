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
		return p, nil
	}
	if p := os.Getenv(EnvPassword); p != "" {
		return p, nil
	}
	return "", ErrMissing
}
