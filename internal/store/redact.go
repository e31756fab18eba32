package store

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Credentials never belong in a location URL: it is typed on command lines (shell history,
// process lists), printed in messages, and handed to mover Jobs as an environment variable that
// anyone who can read the Job sees. gocloud takes no credential from a URL anyway (the SDKs read
// AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_KEY, ...), so such a URL
// is always a mistake: Parse refuses it, and every message shows the URL redacted.

const redacted = "REDACTED"

// credentialWords mark a query parameter whose value is a credential. Parameters naming a file
// (gs's private_key_path) or an identifier that is not secret (s3's kmskeyid) do not match.
var credentialWords = []string{"secret", "token", "password", "passwd", "credential", "signature", "sig", "access_key", "accesskey", "account_key", "accountkey", "api_key", "apikey", "private_key", "session"}

// displayWords are redacted from what is shown, a wider net than what is refused: showing
// "kmskeyid=REDACTED" costs nothing.
var displayWords = append([]string{"key", "auth"}, credentialWords...)

func matchesAny(key string, words []string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_path") || strings.HasSuffix(k, "_file") {
		return false
	}
	for _, w := range words {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// param is one query parameter as written, and decoded where it decodes.
type param struct {
	rawKey, rawValue string
	key, value       string // decoded; the raw text when it does not decode (a malformed %-escape)
}

// params splits a raw query without dropping what url.ParseQuery drops: a pair with a malformed
// escape is still a pair, and may still hold a secret.
func params(rawQuery string) []param {
	var out []param
	for _, pair := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(pair, "=")
		p := param{rawKey: k, rawValue: v, key: k, value: v}
		if d, err := url.QueryUnescape(k); err == nil {
			p.key = d
		}
		if d, err := url.QueryUnescape(v); err == nil {
			p.value = d
		}
		out = append(out, p)
	}
	return out
}

// checkNoCredentials refuses a location URL that carries a credential, naming where it is but
// not its value.
func checkNoCredentials(u *url.URL) error {
	const how = "pass storage credentials through the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_KEY, ...), never in the URL"
	if _, ok := u.User.Password(); ok {
		return errors.New("it holds a password (user:password@): " + how)
	}
	for _, p := range params(u.RawQuery) {
		// The parameter is named redacted: a key may itself hold user:password@.
		name := redactText(p.key)
		if matchesAny(p.key, credentialWords) {
			return fmt.Errorf("its parameter %q is a credential: %s", name, how)
		}
		if hasPassword(p.value) || hasPassword(p.key) {
			return fmt.Errorf("its parameter %q holds a password (user:password@): %s", name, how)
		}
	}
	return nil
}

// Redact returns raw fit to show: user info and credential-like query values replaced, in the
// URL itself and in URL-valued parameters (endpoint=http://user:pass@host). A URL that does not
// parse is redacted as text, so a malformed one still names its host without its secrets.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return scrubText(redactText(raw), secrets(raw))
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		var parts []string
		for _, p := range params(u.RawQuery) {
			v := p.rawValue
			switch {
			case matchesAny(p.key, displayWords):
				v = redacted
			case userInfoRE.MatchString(p.value):
				v = url.QueryEscape(redactText(p.value))
			}
			parts = append(parts, p.rawKey+"="+v)
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	// Whatever else looks like a secret (";token=..." in a path) goes too.
	return scrubText(u.String(), secrets(raw))
}

var (
	userInfoRE = regexp.MustCompile(`(?i)(://|%3A%2F%2F)[^/?#&]*(@|%40)`)
	paramRE    = regexp.MustCompile(`([?&;])([^=&;#]*)=([^&;#]*)`)
)

// hasPassword reports whether a URL written in s has user:password@ in it.
func hasPassword(s string) bool {
	for _, m := range userInfoRE.FindAllStringSubmatch(s, -1) {
		info := m[0][len(m[1]) : len(m[0])-len(m[2])]
		if strings.Contains(strings.ToLower(info), ":") || strings.Contains(strings.ToLower(info), "%3a") {
			return true
		}
	}
	return false
}

// redactText redacts a URL that url.Parse refused (a malformed %-escape, a bad host).
func redactText(raw string) string {
	s := userInfoRE.ReplaceAllString(raw, "${1}"+redacted+"${2}")
	return paramRE.ReplaceAllStringFunc(s, func(m string) string {
		p := paramRE.FindStringSubmatch(m)
		if matchesAny(p[2], displayWords) {
			return p[1] + p[2] + "=" + redacted
		}
		return m
	})
}

// secrets lists the substrings of raw that must never be shown: credential-like query values
// and user-info passwords, raw and decoded, in the URL and in URL-valued parameters.
func secrets(raw string) []string {
	set := map[string]bool{}
	// Each form is kept only when long enough to mean something: replacing a decoded "%3A" (":")
	// everywhere would garble every message, and is no secret.
	keep := func(s string) {
		if len(s) >= 3 && s != redacted {
			set[s] = true
		}
	}
	add := func(s string) {
		if len(s) < 3 {
			return // too short to mean something in any form ("%" escaped is "%25", in every hint)
		}
		keep(s)
		if d, err := url.QueryUnescape(s); err == nil {
			keep(d)
		}
		keep(url.QueryEscape(s))
	}
	var walk func(s string, depth int)
	walk = func(s string, depth int) {
		if depth > 2 {
			return
		}
		for _, m := range userInfoRE.FindAllStringIndex(s, -1) {
			info := s[m[0]:m[1]]
			info = strings.TrimSuffix(strings.TrimSuffix(info, "@"), "%40")
			info = strings.TrimPrefix(strings.TrimPrefix(info, "://"), "%3A%2F%2F")
			for _, sep := range []string{":", "%3A", "%3a"} {
				if _, pw, ok := strings.Cut(info, sep); ok {
					add(info) // user:password, then the password alone
					add(pw)
				}
			}
		}
		for _, p := range paramRE.FindAllStringSubmatch(s, -1) {
			if matchesAny(p[2], displayWords) {
				add(p[3])
			}
			if d, err := url.QueryUnescape(p[3]); err == nil && d != p[3] {
				walk(d, depth+1)
			}
		}
	}
	walk(raw, 0)
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	// Longest first, so a secret is not half-replaced by a shorter one it contains.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// scrubbedError is an error whose message had the location's secrets removed. It unwraps to the
// original so that callers can still test it (gcerrors.Code, errors.Is(context.Canceled)), but
// only ever prints the scrubbed text.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Scrub returns err with every secret of the location URL raw removed from its message (nil
// stays nil). The gocloud drivers repeat the URL they were given in their errors.
func Scrub(raw string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := scrubText(msg, secrets(raw))
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

func scrubText(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}
