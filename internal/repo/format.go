package repo

import (
	"fmt"
	"strings"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/encryption"
	"github.com/kopia/kopia/repo/format"
	"github.com/kopia/kopia/repo/hashing"
)

// The content format of repositories created from now on, chosen by measurement on the mover's
// kind of machine (go run ./hack/bench-format; figures in docs/mover-image.md). Both keep Kopia's
// security properties: a keyed 256-bit hash truncated to 128 bits (as Kopia's default
// BLAKE2B-256-128) and authenticated encryption with per-content keys derived by HMAC-SHA256.
// Existing repositories keep the format they were created with.
const (
	DefaultHash       = "BLAKE3-256-128"
	DefaultEncryption = "AES256-GCM-HMAC-SHA256"
)

// contentFormat is the content format of a repository created with cfg.
func contentFormat(cfg Config) (format.ContentFormat, error) {
	h, e := cfg.Hash, cfg.Encryption
	if h == "" {
		h = DefaultHash
	}
	if e == "" {
		e = DefaultEncryption
	}
	if !contains(hashing.SupportedAlgorithms(), h) {
		return format.ContentFormat{}, fmt.Errorf("unknown hash %q (use one of %s)", h, strings.Join(hashing.SupportedAlgorithms(), ", "))
	}
	if !contains(encryption.SupportedAlgorithms(false), e) {
		return format.ContentFormat{}, fmt.Errorf("unknown encryption %q (use one of %s)", e, strings.Join(encryption.SupportedAlgorithms(false), ", "))
	}
	return format.ContentFormat{Hash: h, Encryption: e}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Format is a repository's format, as `repo status` shows it.
type Format struct {
	Hash       string `json:"hash"`
	Encryption string `json:"encryption"`
	Splitter   string `json:"splitter"`
	Version    int    `json:"version"`
}

// Format reads the open repository's format.
func (r *Repository) Format() Format {
	var f Format
	if dr, ok := r.Repository.(repo.DirectRepository); ok {
		f.Splitter = dr.ObjectFormat().Splitter
		p := dr.ContentReader().ContentFormat()
		f.Hash, f.Encryption = p.GetHashFunction(), p.GetEncryptionAlgorithm()
		f.Version = int(p.GetCachedMutableParameters().Version)
	}
	return f
}
