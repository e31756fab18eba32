package selection

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// ExcludeLabels keep an object out of every backup when set to "true", whatever the selectors
// say: Velero's label, so objects marked for Velero stay out here too, and ours.
var ExcludeLabels = []string{"velero.io/exclude-from-backup", "pvbackup.io/exclude-from-backup"}

// ExcludedBy returns the exclusion label an object carries ("velero.io/exclude-from-backup=true"),
// or "".
func ExcludedBy(l map[string]string) string {
	for _, k := range ExcludeLabels {
		if l[k] == "true" {
			return k + "=true"
		}
	}
	return ""
}

// SplitOrSelector splits Velero's --or-selector: label selectors separated by " or " (a
// separator, not an operator); an object is selected when it matches any of them.
func SplitOrSelector(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, " or ") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("--or-selector %q: an empty selector around \" or \"", s)
		}
		if _, err := labels.Parse(part); err != nil {
			return nil, fmt.Errorf("--or-selector %q: %q: %w", s, part, err)
		}
		out = append(out, part)
	}
	return out, nil
}
