package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// PushOptions are how Push reaches the registry.
type PushOptions struct {
	// Keychain gives the registry's credentials (default: authn.DefaultKeychain, the docker
	// config at $DOCKER_CONFIG/config.json or ~/.docker/config.json and its credential helpers).
	Keychain authn.Keychain
	// UserAgent names the client to the registry.
	UserAgent string
	// Progress, when set, is told the bytes written so far and the total.
	Progress func(done, total int64)
	// Transport replaces the default HTTP transport (tests).
	Transport http.RoundTripper
}

// ParseTarget parses REGISTRY/REPO[:TAG], the tag defaulting to defaultTag. insecure lets the
// registry be spoken to over plain HTTP (go-containerregistry tries HTTPS first).
func ParseTarget(ref string, insecure bool, defaultTag string) (name.Tag, error) {
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("%s: push to a tag (REGISTRY/REPO:TAG), not to a digest", ref)
	}
	opts := []name.Option{name.WithDefaultTag(defaultTag)}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	t, err := name.NewTag(ref, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("%s is not an image reference REGISTRY/REPO[:TAG]: %w", ref, err)
	}
	if !namesRegistry(ref) {
		return name.Tag{}, fmt.Errorf("%s names no registry: give REGISTRY/REPO[:TAG], e.g. registry.example.com/pvbackup-mover:%s (docker.io/%s for Docker Hub)", ref, defaultTag, ref)
	}
	return t, nil
}

// namesRegistry says whether ref starts with a registry host (a dot, a port or localhost), as
// container runtimes read it; without one a reference means Docker Hub.
func namesRegistry(ref string) bool {
	host, _, found := strings.Cut(ref, "/")
	return found && (strings.ContainsAny(host, ".:") || host == "localhost")
}

// Push writes a to tag and returns the digest it was written with: the same as a's.
func Push(ctx context.Context, tag name.Tag, a Artifact, o PushOptions) (v1.Hash, error) {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if o.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(o.UserAgent))
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	if o.Progress != nil {
		updates := make(chan v1.Update, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					o.Progress(u.Complete, u.Total)
				}
			}
		}()
		defer func() { <-done }()
		opts = append(opts, remote.WithProgress(updates)) // closed by remote when the write ends
	}
	var err error
	if a.Index != nil {
		err = remote.WriteIndex(tag, a.Index, opts...)
	} else {
		err = remote.Write(tag, a.Image, opts...)
	}
	if err != nil {
		return v1.Hash{}, pushError(tag, err)
	}
	return a.Digest()
}

// pushError names the registry's answer and what to do about it.
func pushError(tag name.Tag, err error) error {
	reg, ref := tag.RegistryStr(), tag.Name()
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("push %s: the registry %s answered %d Unauthorized: %w (log in to %s with `docker login` or `crane auth login`: the plugin reads the docker config at $DOCKER_CONFIG/config.json or ~/.docker/config.json)", ref, reg, terr.StatusCode, err, reg)
		case http.StatusForbidden:
			return fmt.Errorf("push %s: the registry %s answered 403 Forbidden: %w (the credentials in your docker config may not push to %s)", ref, reg, err, tag.RepositoryStr())
		}
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("push %s: %w (the registry %s speaks plain HTTP: pass --insecure)", ref, err, reg)
	}
	return fmt.Errorf("push %s: %w", ref, err)
}
