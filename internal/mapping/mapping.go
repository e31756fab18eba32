// Package mapping reads the old:new renames of the command line (--namespace-mapping,
// --storage-class-mapping, --mover-storage-class): one parser, so every flag accepts and refuses
// the same things.
package mapping

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind says what a mapping renames: how its names are checked, and whether two old names may
// share a new one.
type Kind struct {
	// Noun names the thing in errors: "namespace", "StorageClass".
	Noun string
	// Valid returns why a name is not valid (nil if it is).
	Valid func(string) []string
	// Unique refuses two old names mapped to one new name (two namespaces cannot become one;
	// two StorageClasses can).
	Unique bool
}

// Kinds of mappings.
var (
	Namespace    = Kind{Noun: "namespace", Valid: validation.IsDNS1123Label, Unique: true}
	StorageClass = Kind{Noun: "StorageClass", Valid: validation.IsDNS1123Subdomain}
)

// Map is a parsed mapping, old name → new name.
type Map map[string]string

// Lookup returns the new name of name, or name itself when the mapping does not rename it.
func (m Map) Lookup(name string) string {
	if to, ok := m[name]; ok {
		return to
	}
	return name
}

// Parse reads the values of --flag, each "old:new" or a comma-separated list of them, into
// old → new. No values gives a nil Map.
func Parse(flag string, k Kind, values []string) (Map, error) {
	m := map[string]string{}
	targets := map[string]string{}
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p == "" {
				continue
			}
			from, to, ok := strings.Cut(p, ":")
			if !ok || from == "" || to == "" {
				return nil, fmt.Errorf("--%s %q: use old:new", flag, p)
			}
			for _, name := range []string{from, to} {
				if errs := k.Valid(name); len(errs) > 0 {
					return nil, fmt.Errorf("--%s %q: %q is not a valid %s name: %s", flag, p, name, k.Noun, strings.Join(errs, "; "))
				}
			}
			if prev, dup := m[from]; dup {
				return nil, fmt.Errorf("--%s maps %q twice (to %q and %q)", flag, from, prev, to)
			}
			if other, dup := targets[to]; dup && k.Unique {
				return nil, fmt.Errorf("--%s maps both %q and %q to %q", flag, other, from, to)
			}
			m[from], targets[to] = to, from
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
