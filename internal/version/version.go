// Package version holds the build's version, set by the Makefile through -ldflags.
package version

// Version is the plugin's semantic version ("v0.1.0"); "dev" for a plain go build.
var Version = "dev"

// MoverImageRepo is where the mover image is published; its tag follows Version.
var MoverImageRepo = "ghcr.io/kubectl-pvbackup/pvbackup-mover"

// MoverImage is the default --mover-image: the image built from this very source.
func MoverImage() string { return MoverImageRepo + ":" + Version }
