package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// errNoProfile: the shared credentials file has no section for the profile.
var errNoProfile = errors.New("no such profile")

// awsProfileOnly returns the section of an AWS shared credentials file for profile, alone: a
// mover Secret carries only the profile the plugin uses, not every profile of the file (a
// namespace admin can read the Secret while the mover runs).
func awsProfileOnly(data []byte, file, profile string) ([]byte, error) {
	var out bytes.Buffer
	in := false
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			name := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t[1:len(t)-1]), "profile "))
			in = name == profile
			found = found || in
		}
		if in {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if !found {
		return nil, fmt.Errorf("AWS_SHARED_CREDENTIALS_FILE=%s has no profile [%s] (AWS_PROFILE): the movers would find no credentials: %w", file, profile, errNoProfile)
	}
	return out.Bytes(), nil
}
