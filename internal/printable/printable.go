// Package printable makes text from a bucket or a cluster safe to print on a terminal. A file
// name, a label or a message written by a tenant (into a volume, an object, a backup.json) may
// hold escape sequences that erase lines, move the cursor or change the title, or a newline that
// poses as another row of a table. Name quotes such text, as `ls` and kubectl do: every command
// that prints a name it did not make passes it through Name.
package printable

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name returns s as it is when every character of it prints as itself, and quoted as Go's %q
// otherwise (control characters, invalid UTF-8, and Unicode format characters such as the bidi
// overrides that reorder what follows, all escaped). Text starting with a double quote is quoted
// too, so that a quoted name cannot be told apart from one written to look quoted.
func Name(s string) string {
	if safe(s) {
		return s
	}
	return strconv.Quote(s)
}

// Lines is Name for text of several lines (an error message): each line on its own.
func Lines(s string) string {
	if safe(strings.ReplaceAll(s, "\n", "")) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Name(l)
	}
	return strings.Join(lines, "\n")
}

func safe(s string) bool {
	if strings.HasPrefix(s, `"`) {
		return false
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return false
			}
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}
