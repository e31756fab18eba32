#!/usr/bin/env bash
# Cross-builds the plugin and packs one archive per platform into dist/, with the krew manifest
# that points at them. `make release` runs it with the Makefile's VERSION and LDFLAGS.
#
#   VERSION=v0.1.0 LDFLAGS='-s -w -X .../internal/version.Version=v0.1.0' hack/release.sh
#
# Writes, for each of linux, darwin, windows x amd64, arm64:
#   dist/kubectl-pvbackup_<VERSION>_<os>_<arch>.tar.gz   the binary (.exe on windows) and LICENSE
# and
#   dist/pvbackup-mover_<VERSION>.oci.tar  the mover image: an OCI image layout tarball holding one
#                         multi-arch index (linux/amd64 + linux/arm64) of the linux binaries above, named
#                         $IMAGE_REPO:<VERSION> (default ghcr.io/kubectl-pvbackup/pvbackup-mover); only when
#                         PLATFORMS has both linux platforms
#   dist/checksums.txt    sha256sum lines of the archives and the image tarball
#   dist/plugins.yaml     the krew manifest rendered from hack/plugins.yaml.tmpl with their sha256
#   plugins.yaml          the same, only for a release version vX.Y.Z (the committed manifest)
#
# The archives are reproducible: for a given source tree, VERSION and Go toolchain the sha256 are the
# same on every run (no VCS stamping, sorted entries, owner 0, one fixed mtime, gzip without name or time).
# The mtime is SOURCE_DATE_EPOCH, by default the time of the last commit that changed anything but
# plugins.yaml, so committing the manifest of a release does not change the archives it describes.
#
# The image tarball is reproducible too, for a given CA bundle (the machine's, or IMAGE_CERTS): its
# files have no time but the epoch (internal/image).
#
# Optional: DIST (default dist), PLATFORMS (default all six, e.g. "linux/amd64"), IMAGE_REPO, IMAGE_CERTS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

log() { printf '>>> %s\n' "$*" >&2; }
die() { printf 'release: %s\n' "$*" >&2; exit 1; }

: "${VERSION:?VERSION is not set: run make release (VERSION=vX.Y.Z to cut a release)}"
: "${LDFLAGS:?LDFLAGS is not set: run make release, which passes the same flags as make build}"
DIST=${DIST:-dist}
ALL_PLATFORMS="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64"
PLATFORMS=${PLATFORMS:-$ALL_PLATFORMS}
NAME=kubectl-pvbackup
MODULE=$(go list -m)
URL=https://github.com/kubectl-pvbackup/kubectl-pvbackup/releases/download
TEMPLATE=hack/plugins.yaml.tmpl
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/kubectl-pvbackup/pvbackup-mover}
IMAGE_TAR=pvbackup-mover_${VERSION}.oci.tar

# krew requires a semantic version with a leading v; so does the mover image tag that follows it.
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$'
[[ $VERSION =~ $semver ]] || die "VERSION $VERSION is not a semantic version with a leading v (e.g. v0.1.0): krew refuses it"
[[ $LDFLAGS == *"$MODULE/internal/version.Version=$VERSION"* ]] ||
	die "LDFLAGS do not set $MODULE/internal/version.Version=$VERSION"

# GNU tar for --sort and --mtime (macOS: brew install gnu-tar, which installs gtar).
TAR=tar
command -v gtar >/dev/null && TAR=gtar
[[ $("$TAR" --version 2>/dev/null) == *"GNU tar"* ]] || die "GNU tar is needed for reproducible archives (macOS: brew install gnu-tar)"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- . ':(exclude)plugins.yaml' 2>/dev/null) ||
		die "not a git checkout: set SOURCE_DATE_EPOCH to the archives' file time (seconds since 1970)"
fi
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH is not a number of seconds"

mkdir -p "$DIST"
rm -f "$DIST/$NAME"_*.tar.gz "$DIST"/pvbackup-mover_*.oci.tar "$DIST/checksums.txt" "$DIST/plugins.yaml"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

render=()
for platform in $PLATFORMS; do
	os=${platform%/*} arch=${platform#*/}
	bin=$NAME
	[ "$os" = windows ] && bin=$NAME.exe
	dir=$stage/${os}_$arch
	mkdir -p "$dir"
	log "building $os/$arch $VERSION"
	start=$SECONDS
	# GOAMD64/GOARM64 are pinned to the baseline so the binaries run on every CPU of the
	# architecture and do not depend on the builder's environment.
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOAMD64=v1 GOARM64=v8.0 \
		go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$dir/$bin" ./cmd/$NAME
	install -m 0644 LICENSE "$dir/LICENSE"
	chmod 0755 "$dir/$bin"
	archive=${NAME}_${VERSION}_${os}_$arch.tar.gz
	(cd "$dir" && "$TAR" --create --format=ustar --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
		--owner=0 --group=0 --numeric-owner -f - LICENSE "$bin") | gzip -n -9 >"$DIST/$archive"
	sum=$(sha256sum "$DIST/$archive" | cut -d' ' -f1)
	printf '%s  %s\n' "$sum" "$archive" >>"$DIST/checksums.txt"
	render+=(-e "s|@SHA256_${os}_${arch}@|$sum|g")
	log "$archive $sum ($((SECONDS - start))s)"
done

# The mover image of the release: the very linux binaries of the archives, as one multi-arch index.
if [ -x "$stage/linux_amd64/$NAME" ] && [ -x "$stage/linux_arm64/$NAME" ]; then
	log "mover image $IMAGE_REPO:$VERSION (linux/amd64, linux/arm64)"
	go run ./hack/image --binary "amd64=$stage/linux_amd64/$NAME" --binary "arm64=$stage/linux_arm64/$NAME" \
		${IMAGE_CERTS:+--certs "$IMAGE_CERTS"} --ref "$IMAGE_REPO:$VERSION" --version "$VERSION" --out "$DIST/$IMAGE_TAR" >&2
	sum=$(sha256sum "$DIST/$IMAGE_TAR" | cut -d' ' -f1)
	printf '%s  %s\n' "$sum" "$IMAGE_TAR" >>"$DIST/checksums.txt"
	log "$IMAGE_TAR $sum"
else
	log "no mover image: PLATFORMS has not both linux/amd64 and linux/arm64"
fi

# The manifest: the template without its leading comment, every placeholder filled in. A build of a
# subset of the platforms (PLATFORMS=...) has no complete manifest and writes none.
manifest=$stage/plugins.yaml
{
	echo "# Generated by hack/release.sh from hack/plugins.yaml.tmpl for $VERSION; edit the template instead."
	echo "# The archives: $URL/$VERSION/"
	sed -n '/^[^#]/,$p' "$TEMPLATE" | sed -e "s|@VERSION@|$VERSION|g" "${render[@]}"
} >"$manifest"
left=$(grep -o '@[A-Za-z0-9_]*@' "$manifest" | sort -u | tr '\n' ' ' || true)
if [ -n "$left" ]; then
	[ "$PLATFORMS" != "$ALL_PLATFORMS" ] && { log "no manifest: PLATFORMS is a subset of the release"; exit 0; }
	die "the manifest still has placeholders ($left): $TEMPLATE and PLATFORMS disagree"
fi
cp "$manifest" "$DIST/plugins.yaml"
log "wrote $DIST/plugins.yaml"

# Only a release version replaces the committed manifest; development builds leave it alone.
if [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ "$DIST" = dist ]; then
	cp "$manifest" plugins.yaml
	log "wrote plugins.yaml for release $VERSION: commit it, tag $VERSION and push the tag (.github/workflows/release.yml publishes it)"
fi
