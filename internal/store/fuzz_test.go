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
		// Not leaks: a decoded %3A is ":", which the scheme shows; quoting \x00 shows "x00000".
		"gopher://b/p?key=%3A",
		"\x00000&keY=0000",
		"A://0:%@",      // a one-character password escapes to "%25", which a hint shows
		"0?://:SeCret@", // user:password@ in a parameter's name, which the refusal named
		"A0://00?0000000=&00000000000ACCess_keY=000000000", // the secret's text in a parameter's name
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		bucketURL, _, err := Parse(raw)
		red := Redact(raw)
		// A secret's text may be shown where it is not the secret: elsewhere in the URL
		// ("s3://0000b/p?key=0000") or made by quoting ("\x00" + "000" is shown as \x00000). What
		// is shown of a secret must be what is shown once every secret was removed from the input.
		ref := scrubText(raw, secrets(raw))
		refShown := Redact(ref)
		if _, _, rerr := Parse(ref); rerr != nil {
			refShown += "\n" + rerr.Error()
		}
		// The URL without its secret positions (user info, parameter values): a secret whose
		// text is also there (in a parameter's name, say) may be shown as that.
		skeleton := paramRE.ReplaceAllString(userInfoRE.ReplaceAllString(raw, "${1}${2}"), "${1}${2}=")
		for _, s := range secrets(raw) {
			if len(s) < 3 {
				t.Fatalf("secrets(%q) lists %q: too short to scrub from messages", raw, s)
			}
			if strings.Contains(strings.ToLower(skeleton), strings.ToLower(s)) {
				continue
			}
			if strings.Contains(red, s) && !strings.Contains(refShown, s) {
				t.Fatalf("Redact(%q) = %q shows %q", raw, red, s)
			}
			if err != nil && strings.Contains(err.Error(), s) && !strings.Contains(refShown, s) {
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
