package printable

import "testing"

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"data.txt", "data.txt"},
		{"with space", "with space"},
		{"ünïcödé ☃", "ünïcödé ☃"},
		{"", ""},
		// Escape sequences: erase the line and the screen, move the cursor, set the title.
		{"a\x1b[2Kb", `"a\x1b[2Kb"`},
		{"\x1b[2J\x1b[H", `"\x1b[2J\x1b[H"`},
		{"x\x1b]0;pwned\x07", `"x\x1b]0;pwned\a"`},
		{"\u009b31m", `"\u009b31m"`}, // the one-character CSI
		// A new row, or a carriage return that writes over this one.
		{"ok\n-rw-r--r-- 0 0 1 2024-01-01 00:00:00 fake", `"ok\n-rw-r--r-- 0 0 1 2024-01-01 00:00:00 fake"`},
		{"evil\rgood", `"evil\rgood"`},
		{"tab\there", `"tab\there"`},
		{"back\bspace", `"back\bspace"`},
		{"del\x7f", `"del\x7f"`},
		// Reordering and invisible characters.
		{"invoice\u202egpj.exe", `"invoice\u202egpj.exe"`},
		{"zero\u200bwidth", `"zero\u200bwidth"`},
		{"line\u2028sep", `"line\u2028sep"`},
		// Not UTF-8.
		{"bad\xffbyte", `"bad\xffbyte"`},
		// Already looks quoted: quoted again, so it cannot pass for the quoting of another name.
		{`"a\x1b"`, `"\"a\\x1b\""`},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"first\nsecond", "first\nsecond"},
		{"backup \"x\": bad\nname a\x1b[2Kb", "backup \"x\": bad\n\"name a\\x1b[2Kb\""},
	} {
		if got := Lines(tc.in); got != tc.want {
			t.Errorf("Lines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
