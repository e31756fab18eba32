package store

import (
	"net/url"
	"strings"
)

// WithPrefix narrows a location URL to sub ("kopia/ns/") below its prefix, with the prefix query
// parameter that Parse appends to the path's prefix. A URL that does not parse is returned as it
// is: Open reports it.
func WithPrefix(location, sub string) string {
	u, err := url.Parse(location)
	if err != nil {
		return location
	}
	q := u.Query()
	q.Set("prefix", strings.Trim(strings.Trim(q.Get("prefix"), "/")+"/"+sub, "/"))
	u.RawQuery = q.Encode()
	return u.String()
}
