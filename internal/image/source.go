package image

import (
	"fmt"
	"sort"
)

// Source is an artifact to push, where it came from, and what it holds.
type Source struct {
	Artifact
	// From says where the artifact came from, for messages.
	From string
	// Platforms are the images' os/arch, sorted.
	Platforms []string
	// Versions are the images' version labels, sorted and distinct.
	Versions []string
	close    func() error
}

// Close releases what the source holds (an unpacked archive).
func (s *Source) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// FromSelf builds the mover image of the running plugin for its architecture, with the CA bundle
// of this machine (caFile, or the usual places) and version as its label.
func FromSelf(caFile, version string) (*Source, error) {
	bin, arch, err := Self()
	if err != nil {
		return nil, err
	}
	ca, caFrom, err := SystemCABundle(caFile)
	if err != nil {
		return nil, err
	}
	img, err := Build(Spec{Binary: bin, CABundle: ca, Arch: arch, Version: version})
	if err != nil {
		return nil, err
	}
	return describe(Artifact{Image: img}, fmt.Sprintf("built from this plugin's binary (%.1f MiB) and the CA bundle %s", float64(len(bin))/(1<<20), caFrom), nil)
}

// FromArchive reads an OCI layout tarball (the release's pvbackup-mover_<version>.oci.tar, or
// `make image`'s) and checks that it holds mover images.
func FromArchive(file string) (*Source, error) {
	a, err := ReadArchive(file)
	if err != nil {
		return nil, err
	}
	s, err := describe(a.Artifact, file, a.Close)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}

// describe checks that every image of a is a mover image for linux/amd64 or linux/arm64 and
// records their platforms and versions.
func describe(a Artifact, from string, closer func() error) (*Source, error) {
	imgs, err := a.Images()
	if err != nil {
		return nil, err
	}
	s := &Source{Artifact: a, From: from, close: closer}
	versions := map[string]bool{}
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		if cf.Config.Labels[LabelTitle] != Title {
			return nil, fmt.Errorf("an image is titled %q, not %q: not a kubectl-pvbackup mover image", cf.Config.Labels[LabelTitle], Title)
		}
		if cf.OS != "linux" || !knownArch(cf.Architecture) {
			return nil, fmt.Errorf("an image is for %s/%s: the mover runs on linux/amd64 or linux/arm64", cf.OS, cf.Architecture)
		}
		s.Platforms = append(s.Platforms, cf.OS+"/"+cf.Architecture)
		versions[cf.Config.Labels[LabelVersion]] = true
	}
	for v := range versions {
		s.Versions = append(s.Versions, v)
	}
	sort.Strings(s.Platforms)
	sort.Strings(s.Versions)
	return s, nil
}
