// Command image writes the mover image (internal/image) as an OCI image layout tarball, without a
// container engine: one image for one binary, or a multi-arch index for a binary per architecture.
//
//	go run -ldflags '-X .../internal/version.Version=v0.1.0' ./hack/image --binary FILE --arch amd64 --out mover.tar
//	go run ./hack/image --binary amd64=FILE --binary arm64=FILE --out dist/pvbackup-mover_v0.1.0.oci.tar
//
// `make image` runs the first form, hack/release.sh the second.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
)

// binaries is the repeatable --binary [ARCH=]FILE.
type binaries []string

func (b *binaries) String() string     { return strings.Join(*b, ",") }
func (b *binaries) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	var bins binaries
	flag.Var(&bins, "binary", "static linux kubectl-pvbackup (CGO_ENABLED=0), as FILE (for --arch) or ARCH=FILE; repeat for a multi-arch index")
	certs := flag.String("certs", "", "CA bundle to ship (default: the machine's, e.g. Debian's /etc/ssl/certs/ca-certificates.crt)")
	ref := flag.String("ref", version.MoverImage(), "image reference recorded in the layout (default: the plugin's --mover-image default)")
	ver := flag.String("version", version.Version, "version label")
	arch := flag.String("arch", runtime.GOARCH, "architecture of a --binary given without ARCH=")
	out := flag.String("out", "", "OCI layout tarball to write")
	flag.Parse()
	if len(bins) == 0 || *ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: image --binary [ARCH=]FILE [--binary ARCH=FILE] --out FILE.tar [--ref REF] [--certs FILE] [--arch ARCH] [--version V]")
		os.Exit(2)
	}
	platforms, err := build(bins, *certs, *ref, *ver, *arch, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s, %s)\n", *out, *ref, strings.Join(platforms, ", "))
}

func build(bins []string, certs, ref, ver, defaultArch, out string) ([]string, error) {
	ca, from, err := image.SystemCABundle(certs)
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	var platforms []string
	for _, b := range bins {
		arch, file, found := strings.Cut(b, "=")
		if !found {
			arch, file = defaultArch, b
		}
		bin, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read the linux/%s binary: %w (build it with CGO_ENABLED=0 GOOS=linux GOARCH=%s)", arch, err, arch)
		}
		img, err := image.Build(image.Spec{Binary: bin, CABundle: ca, Arch: arch, Version: ver})
		if err != nil {
			return nil, fmt.Errorf("%s (CA bundle %s): %w", file, from, err)
		}
		imgs = append(imgs, img)
		platforms = append(platforms, "linux/"+arch)
	}
	a := image.Artifact{Image: imgs[0]}
	if len(imgs) > 1 {
		if a.Index, err = image.Index(imgs...); err != nil {
			return nil, err
		}
	}
	return platforms, image.WriteArchive(out, ref, a)
}
