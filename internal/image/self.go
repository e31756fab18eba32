package image

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

// ErrNotSelfBuildable is returned by Self where the running plugin cannot be the mover's binary:
// the caller pushes a release's archive instead (--from-archive).
var ErrNotSelfBuildable = errors.New("this plugin's binary cannot be the mover's")

// Self is the running plugin's own binary, when it can be the mover image's: a static linux
// binary for amd64 or arm64. Anything else is ErrNotSelfBuildable, with the reason.
func Self() (bin []byte, arch string, err error) {
	if err := selfBuildable(runtime.GOOS, runtime.GOARCH, buildSetting("CGO_ENABLED")); err != nil {
		return nil, "", err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find this plugin's binary: %w", err)
	}
	bin, err = os.ReadFile(exe)
	if err != nil {
		return nil, "", fmt.Errorf("read this plugin's binary: %w", err)
	}
	return bin, runtime.GOARCH, nil
}

func selfBuildable(goos, goarch, cgo string) error {
	if goos != "linux" || !knownArch(goarch) {
		return fmt.Errorf("%w: it is built for %s/%s and the mover image is linux/amd64 or linux/arm64", ErrNotSelfBuildable, goos, goarch)
	}
	if cgo == "1" {
		return fmt.Errorf("%w: it was built with cgo (CGO_ENABLED=1) and needs a C library the image does not have; build it with CGO_ENABLED=0 (make build)", ErrNotSelfBuildable)
	}
	return nil
}

func buildSetting(key string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// caBundles are where Linux distributions keep their CA bundle (the list Go's crypto/x509 reads).
var caBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine
}

// SystemCABundle reads the machine's CA bundle: file if given, else $SSL_CERT_FILE, else the
// first of the distributions' usual places that exists.
func SystemCABundle(file string) ([]byte, string, error) {
	if file == "" {
		file = os.Getenv("SSL_CERT_FILE")
	}
	candidates := caBundles
	if file != "" {
		candidates = []string{file}
	}
	for _, f := range candidates {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && file == "" {
			continue
		}
		if err != nil {
			return nil, f, fmt.Errorf("read the CA bundle %s: %w", f, err)
		}
		if err := CheckCABundle(b); err != nil {
			return nil, f, fmt.Errorf("%s: %w", f, err)
		}
		return b, f, nil
	}
	return nil, "", fmt.Errorf("no CA bundle found in %v: install ca-certificates, or pass --ca-bundle FILE", caBundles)
}

// CheckCABundle says whether b holds at least one PEM certificate.
func CheckCABundle(b []byte) error {
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return errors.New("the CA bundle holds no PEM certificate: the mover could not verify TLS servers (apt-get install ca-certificates)")
	}
	return nil
}
