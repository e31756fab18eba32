package store

import "testing"

// TestWithPrefix: the sub-prefix goes below the location's own prefix, whichever way it was given,
// and Parse reads it back.
func TestWithPrefix(t *testing.T) {
	for _, c := range []struct{ location, want, wantPrefix string }{
		{"s3://bucket", "s3://bucket?prefix=kopia%2Fns", "kopia/ns/"},
		{"s3://bucket?prefix=team/", "s3://bucket?prefix=team%2Fkopia%2Fns", "team/kopia/ns/"},
		{"s3://bucket?prefix=%2Fteam%2F&region=x", "s3://bucket?prefix=team%2Fkopia%2Fns&region=x", "team/kopia/ns/"},
		{"::not a url", "::not a url", ""},
	} {
		got := WithPrefix(c.location, "kopia/ns/")
		if got != c.want {
			t.Errorf("WithPrefix(%q) = %q, want %q", c.location, got, c.want)
			continue
		}
		if c.wantPrefix == "" {
			continue
		}
		if _, prefix, err := Parse(got); err != nil || prefix != c.wantPrefix {
			t.Errorf("Parse(%q) = prefix %q, %v; want %q", got, prefix, err, c.wantPrefix)
		}
	}
}
