package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
)

// NewImageCmd builds `image` and its subcommands.
func NewImageCmd(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "The mover image: push it into your own registry (air-gapped clusters)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(NewImagePushCmd(streams))
	return cmd
}

// ImagePushOptions are the flags of `image push`.
type ImagePushOptions struct {
	streams     genericiooptions.IOStreams
	output      outputOptions
	Target      string
	FromArchive string
	CABundle    string
	Insecure    bool
}

// NewImagePushCmd builds `image push`.
func NewImagePushCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ImagePushOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "push REGISTRY/REPO[:TAG] [--from-archive FILE]",
		Short: "Push the mover image into a registry the cluster's nodes pull from",
		Long: `push writes the mover image - this plugin's own binary, a CA bundle and a non-root user,
nothing else - into your registry, for clusters that cannot pull ` + version.MoverImageRepo + `.
The tag defaults to this plugin's version (` + version.Version + `). Then pass --mover-image with the
reference it prints to create, restore and doctor.

On linux/amd64 and linux/arm64 it builds the image from the running binary, for this machine's
architecture, with this machine's CA bundle (--ca-bundle to choose one). Elsewhere, or for another
architecture or a multi-arch image, give the release's OCI image archive with --from-archive
(pvbackup-mover_<version>.oci.tar, a linux/amd64 + linux/arm64 index, checksummed in checksums.txt).

Credentials come from the docker config, as docker, crane and skopeo use it: $DOCKER_CONFIG/config.json
or ~/.docker/config.json, with its credential helpers (docker login, crane auth login). Nothing is
created in a cluster.`,
		Example: fmt.Sprintf(examples(`
			# Build the image from this plugin and push it
			%[1]s image push registry.internal/pvbackup-mover

			# Push the release's multi-arch image (e.g. from macOS, or for arm64 nodes)
			%[1]s image push registry.internal/pvbackup-mover:`+version.Version+` --from-archive pvbackup-mover_`+version.Version+`.oci.tar

			# Then use it
			%[1]s create nightly --to s3://backups --mover-image registry.internal/pvbackup-mover:`+version.Version), "kubectl pvbackup"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Target = args[0]
			return runSteps(cmd.Context(), nil, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.FromArchive, "from-archive", "", "push this OCI image layout tarball (the release's pvbackup-mover_<version>.oci.tar) instead of building the image from this plugin")
	fs.StringVar(&o.CABundle, "ca-bundle", "", "CA bundle (PEM) the built image ships for the mover's TLS (default: $SSL_CERT_FILE, else this machine's, e.g. /etc/ssl/certs/ca-certificates.crt)")
	fs.BoolVar(&o.Insecure, "insecure", false, "let the registry speak plain HTTP (HTTPS is tried first; registries on private and loopback addresses may always)")
	o.output.addFlag(fs)
	return cmd
}

// Validate checks the options without any I/O.
func (o *ImagePushOptions) Validate() error {
	if _, err := image.ParseTarget(o.Target, o.Insecure, version.Version); err != nil {
		return err
	}
	if o.FromArchive != "" && o.CABundle != "" {
		return fmt.Errorf("--ca-bundle is for an image built from this plugin: an archive's image has its CA bundle already")
	}
	return o.output.validate()
}

// pushResult is what `image push` prints with -o json|yaml.
type pushResult struct {
	Image     string   `json:"image"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	Versions  []string `json:"versions"`
	From      string   `json:"from"`
}

// Run builds or reads the image and pushes it.
func (o *ImagePushOptions) Run(ctx context.Context) error {
	tag, _ := image.ParseTarget(o.Target, o.Insecure, version.Version)
	var src *image.Source
	var err error
	if o.FromArchive != "" {
		src, err = image.FromArchive(o.FromArchive)
	} else {
		src, err = image.FromSelf(o.CABundle, version.Version)
	}
	if errors.Is(err, image.ErrNotSelfBuildable) {
		return fmt.Errorf("%w: give the release's image archive with --from-archive pvbackup-mover_%s.oci.tar", err, version.Version)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	if len(src.Versions) != 1 || src.Versions[0] != version.Version {
		fmt.Fprintf(o.streams.ErrOut, "warning: the image is kubectl-pvbackup %s and this plugin is %s: movers and plugin should be of one version\n", strings.Join(src.Versions, ", "), version.Version)
	}
	fmt.Fprintf(o.streams.ErrOut, "pushing %s (%s) to %s\n", strings.Join(src.Platforms, ", "), src.From, tag.Name())
	digest, err := image.Push(ctx, tag, src.Artifact, image.PushOptions{
		UserAgent: "kubectl-pvbackup/" + version.Version,
		Progress:  progressPrinter(o.streams, time.Second),
	})
	if err != nil {
		return err
	}
	res := pushResult{Image: tag.Name(), Digest: digest.String(), Platforms: src.Platforms, Versions: src.Versions, From: src.From}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	fmt.Fprintf(o.streams.Out, "%s@%s\n", res.Image, res.Digest)
	fmt.Fprintf(o.streams.ErrOut, "pushed; use it with: --mover-image %s\n", res.Image)
	return nil
}

// progressPrinter prints how much of the push is done, at most once per interval.
func progressPrinter(streams genericiooptions.IOStreams, every time.Duration) func(done, total int64) {
	var mu sync.Mutex
	var last time.Time
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < every && done < total {
			return
		}
		last = time.Now()
		fmt.Fprintf(streams.ErrOut, "... %.1f of %.1f MiB\n", float64(done)/(1<<20), float64(total)/(1<<20))
	}
}
