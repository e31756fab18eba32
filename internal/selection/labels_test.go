package selection

import (
	"strings"
	"testing"
)

func TestSplitOrSelector(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "", want: ""},
		{in: "foo=bar or baz=qux", want: "foo=bar|baz=qux"},
		{in: "env in (prod,production) or environment in (prod, production)", want: "env in (prod,production)|environment in (prod, production)"},
		{in: "a=b", want: "a=b"},
		{in: "a=b or ", err: "an empty selector"},
		{in: "a=b or c d", err: `"c d"`},
	} {
		got, err := SplitOrSelector(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExcludedBy(t *testing.T) {
	for lbls, want := range map[string]string{
		"velero.io/exclude-from-backup=true":   "velero.io/exclude-from-backup=true",
		"pvbackup.io/exclude-from-backup=true": "pvbackup.io/exclude-from-backup=true",
		"velero.io/exclude-from-backup=false":  "",
		"velero.io/exclude-from-backup=True":   "",
		"app=x":                                "",
	} {
		k, v, _ := strings.Cut(lbls, "=")
		if got := ExcludedBy(map[string]string{k: v}); got != want {
			t.Errorf("%s: got %q, want %q", lbls, got, want)
		}
	}
}
