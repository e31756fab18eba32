// Package password finds the repository password. There is no default: a backup tool that
// encrypts with a well-known password protects nothing.
package password

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// EnvPassword names the environment variable that holds the password.
const EnvPassword = "PVBACKUP_PASSWORD"

// ErrMissing is returned when no password was given.
var ErrMissing = errors.New("no repository password: set " + EnvPassword + " or pass --password-file FILE (there is no default password)")

// MaxFileSize bounds a password file: a passphrase is far shorter, and a file such as /dev/zero
// or a large file given by mistake must not be read whole.
const MaxFileSize = 4 << 10

// Load returns the password from file when it is set, else from the environment.
// A trailing newline in the file is not part of the password.
func Load(file string) (string, error) {
	if file != "" {
		p, err := ReadFile(file)
		if err != nil {
			return "", err
		}
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

// ReadFile reads a password from file, without its trailing newline. Only a regular file of at
// most MaxFileSize bytes is read: a device (/dev/zero) or a named pipe (which would wait for a
// writer before any signal is handled) is refused without being opened.
func ReadFile(file string) (string, error) {
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	if err := regularSmall(file, st); err != nil {
		return "", err
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil { // what was opened, if the name changed meanwhile
		return "", fmt.Errorf("read password file: %w", err)
	}
	if err := regularSmall(file, st); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read password file %s: %w", file, err)
	}
	if len(b) > MaxFileSize {
		return "", tooLarge(file)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func regularSmall(file string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("password file %s is %s, not a regular file: put the password in a file (chmod 600) or in %s", file, kind(st.Mode()), EnvPassword)
	}
	if st.Size() > MaxFileSize {
		return tooLarge(file)
	}
	return nil
}

func tooLarge(file string) error {
	return fmt.Errorf("password file %s is larger than %d bytes: that is not a password file (is it the right file?)", file, MaxFileSize)
}

// kind names a file type that is not a regular file.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
