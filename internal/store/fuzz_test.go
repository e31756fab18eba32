package store

import (
	"strings"
	"testing"
)

// FuzzParse: any location URL either parses or is refused, never panics; neither the redacted
// form nor the error shows a secret it holds; what parses has no credential in it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"s3://bkt/team/prod?region=eu-west-1&endpoint=http://h:9000",
		"s3://b/p?region=x&aws_secret_access_key=Sq1Secret",
		"s3://b/p?endpoint=http://u:Sq2Secret@h:1",
		"s3://b/p?endpoint=http%3A%2F%2Fu%3ASq3Secret%40h",
		"s3://u:Sq4Secret@b/p",
		"s3://b/p?aws_secret_access_key=Sq5%zzSecret",
		"gs://b/p?access_token=Sq6Secret",
		"azblob://c/p?sas_token=Sq7Secret",
		"file:///var/backups?prefix=a/b",
		"mem://",
		"s3://b/p?prefix=../x",
		"::::",
		"s3://[::1/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		bucketURL, _, err := Parse(raw)
		red := Redact(raw)
		for _, s := range secrets(raw) {
			if strings.Contains(red, s) {
				t.Fatalf("Redact(%q) = %q shows %q", raw, red, s)
			}
			if err != nil && strings.Contains(err.Error(), s) {
				t.Fatalf("Parse(%q) error shows %q: %v", raw, s, err)
			}
		}
		if err == nil && len(secrets(bucketURL)) > 0 && hasCredential(bucketURL) {
			t.Fatalf("Parse(%q) accepted a credential: %q", raw, bucketURL)
		}
	})
}

// hasCredential is checkNoCredentials on a URL string.
func hasCredential(raw string) bool {
	_, _, err := Parse(raw)
	return err != nil && (strings.Contains(err.Error(), "is a credential") || strings.Contains(err.Error(), "holds a password"))
}
