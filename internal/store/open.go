package store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"
)

// gcsEndpointParam is the gs:// URL parameter that points the bucket at another GCS endpoint (a
// GCS-compatible server, an emulator such as fake-gcs-server): gocloud's gcsblob reads only the
// process-wide STORAGE_EMULATOR_HOST for that, which cannot differ between the plugin and the
// movers (loopback here, the node's address there) nor between two locations of one command
// (`copy`). s3:// has gocloud's own `endpoint`, azblob:// its `domain`, `protocol` and `localemu`.
const gcsEndpointParam = "endpoint"

// openBucket opens a bucket URL as Parse returned it: through gocloud's URL mux, except a gs://
// URL with an endpoint, which is opened here with a storage client for that endpoint.
func openBucket(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "gs" || u.Query().Get(gcsEndpointParam) == "" {
		return blob.OpenBucket(ctx, bucketURL)
	}
	q := u.Query()
	ep, err := url.Parse(q.Get(gcsEndpointParam))
	if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" {
		return nil, fmt.Errorf("gs:// parameter %s=%q: want http(s)://host[:port]", gcsEndpointParam, q.Get(gcsEndpointParam))
	}
	opts := []option.ClientOption{
		option.WithEndpoint(strings.TrimSuffix(ep.String(), "/") + "/storage/v1/"),
		// Reads through the JSON API too: an endpoint other than Google's may not serve the XML
		// API the client uses for reads by default.
		storage.WithJSONReads(),
	}
	if anon, _ := strconv.ParseBool(q.Get("anonymous")); anon {
		opts = append(opts, option.WithoutAuthentication())
	}
	for k := range q {
		if k != gcsEndpointParam && k != "anonymous" {
			return nil, fmt.Errorf("gs:// with %s takes only the anonymous parameter besides, not %q", gcsEndpointParam, k)
		}
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	b, err := gcsblob.OpenBucket(ctx, nil, u.Host, &gcsblob.Options{Client: c})
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return b, nil
}
