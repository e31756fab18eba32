#!/usr/bin/env bash
# Proves that the release in dist/ installs with krew, the way users install it. `make release-check`
# runs it after `make release`, with the same VERSION and LDFLAGS.
#
#  1. builds krew and its manifest validator (sigs.k8s.io/krew $KREW_VERSION) into .local/bin, once;
#  2. validates dist/plugins.yaml with validate-krew-manifest, and the committed plugins.yaml too
#     (it must also be hack/plugins.yaml.tmpl rendered, nothing edited by hand);
#  3. in a sandbox (temp HOME, KREW_ROOT, TMPDIR) runs, for every platform of the manifest,
#     KREW_OS=<os> KREW_ARCH=<arch> krew install --manifest=dist/plugins.yaml --archive=<its archive>,
#     which checks the archive's sha256 and that the manifest's bin is in it; then checks that the
#     installed binary is built for that platform (its Go build info) and that LICENSE was installed;
#  4. runs the installed plugin for this machine's platform: `kubectl pvbackup version` prints VERSION
#     (-trimpath keeps -ldflags out of the build info, so the version is checked by running it);
#  5. rebuilds this machine's archive and compares its sha256 (the archives are reproducible);
#     checks that the mover image tarball is in checksums.txt with its sha256, and that the image
#     rebuilt from the linux/amd64 and linux/arm64 binaries taken out of the archives is byte for byte
#     the same (so the image holds those very binaries, and is reproducible);
#  6. checks that the checks can fail: a wrong sha256, an archive without the binary and a version
#     without its v must each be refused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
KREW_VERSION=${KREW_VERSION:-v0.4.3}
BIN=$ROOT/.local/bin
DIST=${DIST:-dist}
NAME=kubectl-pvbackup
: "${VERSION:?VERSION is not set: run make release-check}"
: "${LDFLAGS:?LDFLAGS is not set: run make release-check}"

log() { printf '>>> %s\n' "$*" >&2; }
pass() { printf '  ok  %s (%ds)\n' "$*" "$SECONDS" >&2; }
fail() { printf 'release-check: FAIL: %s\n' "$*" >&2; exit 1; }
# run LOGFILE CMD...: runs CMD with its output in LOGFILE; on failure prints the output.
run() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 || { sed 's/^/    | /' "$out" >&2; return 1; }
}

# 1. krew and validate-krew-manifest, from the Go module proxy; kept while they are $KREW_VERSION.
mkdir -p "$BIN"
for cmd in krew validate-krew-manifest; do
	if ! grep -qE "^\s+mod\s+sigs.k8s.io/krew\s+$KREW_VERSION\s" <<<"$(go version -m "$BIN/$cmd" 2>/dev/null)"; then
		log "building $cmd $KREW_VERSION"
		GOBIN=$BIN CGO_ENABLED=0 GOFLAGS= go install -trimpath \
			-ldflags "-X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" "sigs.k8s.io/krew/cmd/$cmd@$KREW_VERSION"
	fi
done

manifest=$DIST/plugins.yaml
[ -f "$manifest" ] || fail "$manifest is missing: run make release first"
sandbox=$(mktemp -d)
trap 'chmod -R u+w "$sandbox" 2>/dev/null; rm -rf "$sandbox"' EXIT
mkdir -p "$sandbox/bin" "$sandbox/home" "$sandbox/tmp"
# kubectl finds a plugin `kubectl foo` as kubectl-foo on PATH and runs it with the remaining
# arguments; this stand-in does exactly that, so `kubectl krew` and `kubectl pvbackup` work here
# without building kubectl.
cat >"$sandbox/bin/kubectl" <<'EOF'
#!/usr/bin/env bash
p=$(command -v "kubectl-$1") || { echo "kubectl: unknown command $1" >&2; exit 1; }
shift
exec "$p" "$@"
EOF
chmod +x "$sandbox/bin/kubectl"
ln -s "$BIN/krew" "$sandbox/bin/kubectl-krew"
# Go keeps its caches where they were (they default to places under HOME).
GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) GOPATH=$(go env GOPATH)
export GOCACHE GOMODCACHE GOPATH
export HOME=$sandbox/home TMPDIR=$sandbox/tmp KREW_NO_UPGRADE_CHECK=1
export PATH=$sandbox/bin:$PATH
# krew refuses a manifest whose file name is not <plugin name>.yaml.
cp "$manifest" "$sandbox/pvbackup.yaml"

# krew_install KREW_ROOT OS ARCH MANIFEST ARCHIVE LOG
krew_install() {
	KREW_ROOT=$1 KREW_OS=$2 KREW_ARCH=$3 run "$6" kubectl krew install --manifest="$4" --archive="$5"
}

# 2. The manifests are valid krew manifests.
log "validating $manifest with validate-krew-manifest $KREW_VERSION"
run "$sandbox/validate.log" "$BIN/validate-krew-manifest" -manifest "$sandbox/pvbackup.yaml" -skip-install ||
	fail "$manifest is not a valid krew manifest"
pass "$manifest is valid"
grep -qx "  version: $VERSION" "$manifest" || fail "$manifest is not for version $VERSION"
pass "$manifest is for $VERSION"

template_body() { sed -n '/^[^#]/,$p' hack/plugins.yaml.tmpl; }
# unrender FILE: FILE with its version and sha256 values turned back into the template's placeholders.
unrender() {
	local version
	version=$(sed -n 's/^  version: //p' "$1")
	sed -n '/^[^#]/,$p' "$1" | awk -v v="$version" '
		function literal(s, old, new,   out, i) {
			out = ""
			while ((i = index(s, old)) > 0) { out = out substr(s, 1, i - 1) new; s = substr(s, i + length(old)) }
			return out s
		}
		{ $0 = literal($0, v, "@VERSION@") }
		/^    uri: / { n = split($2, parts, "_"); platform = parts[n-1] "_" parts[n]; sub(/\.tar\.gz$/, "", platform) }
		/^    sha256: / { $0 = "    sha256: @SHA256_" platform "@" }
		{ print }'
}
if [ -f plugins.yaml ]; then
	mkdir -p "$sandbox/committed"
	cp plugins.yaml "$sandbox/committed/pvbackup.yaml"
	run "$sandbox/validate-committed.log" "$BIN/validate-krew-manifest" -manifest "$sandbox/committed/pvbackup.yaml" -skip-install ||
		fail "the committed plugins.yaml is not a valid krew manifest"
	diff -u <(template_body) <(unrender plugins.yaml) >&2 ||
		fail "plugins.yaml differs from hack/plugins.yaml.tmpl (above): edit the template and run make release VERSION=vX.Y.Z"
	pass "the committed plugins.yaml is valid and rendered from hack/plugins.yaml.tmpl"
else
	fail "plugins.yaml is missing: run make release VERSION=vX.Y.Z and commit it"
fi
diff -u <(template_body) <(unrender "$manifest") >&2 || fail "$manifest differs from hack/plugins.yaml.tmpl (above)"
pass "$manifest is rendered from hack/plugins.yaml.tmpl"

# 3. Every platform installs from its archive.
platforms=$(sed -n 's/^ *uri: .*_\([a-z]*_[a-z0-9]*\)\.tar\.gz$/\1/p' "$manifest")
[ "$(wc -w <<<"$platforms")" -eq 6 ] || fail "$manifest has $(wc -w <<<"$platforms") platforms, not 6: $platforms"
for platform in $platforms; do
	os=${platform%_*} arch=${platform#*_}
	archive=$DIST/${NAME}_${VERSION}_${platform}.tar.gz
	[ -f "$archive" ] || fail "$archive is missing"
	grep -q "uri: https://github.com/kubectl-pvbackup/kubectl-pvbackup/releases/download/$VERSION/$(basename "$archive")$" "$manifest" ||
		fail "$manifest has no release URI for $(basename "$archive")"
	krewroot=$sandbox/krew-$platform
	krew_install "$krewroot" "$os" "$arch" "$sandbox/pvbackup.yaml" "$archive" "$sandbox/install-$platform.log" ||
		fail "krew install of $archive for $os/$arch"
	bin=$NAME
	[ "$os" = windows ] && bin=$NAME.exe
	store=$krewroot/store/pvbackup/$VERSION
	[ -f "$store/LICENSE" ] || fail "$os/$arch: LICENSE was not installed (krew-index requires it)"
	[ -x "$store/$bin" ] || fail "$os/$arch: $bin was not installed as an executable"
	info=$(go version -m "$store/$bin") || fail "$os/$arch: $bin is not a Go binary"
	grep -qE "^\s+build\s+GOOS=$os$" <<<"$info" && grep -qE "^\s+build\s+GOARCH=$arch$" <<<"$info" ||
		fail "$os/$arch: $bin is built for another platform: $(grep -E 'GOOS|GOARCH' <<<"$info" | tr -s ' \t\n' ' ')"
	pass "krew installs $os/$arch: sha256 matches, $bin (built for $os/$arch) and LICENSE installed"
done

# 4. The installed plugin runs, as kubectl pvbackup, from krew's bin directory.
host=$(go env GOHOSTOS)_$(go env GOHOSTARCH)
grep -qx "$host" <<<"$platforms" || fail "no archive for this machine ($host)"
got=$(KREW_ROOT=$sandbox/krew-$host PATH=$sandbox/krew-$host/bin:$PATH kubectl pvbackup version) ||
	fail "the installed kubectl pvbackup version failed"
[ "$(head -n 1 <<<"$got")" = "$NAME $VERSION" ] || fail "kubectl pvbackup version printed \"$got\", want \"$NAME $VERSION\" first"
[ "$(readlink "$sandbox/krew-$host/bin/$NAME")" = "$sandbox/krew-$host/store/pvbackup/$VERSION/$NAME" ] ||
	fail "krew's $NAME link does not point into its store"
pass "kubectl pvbackup version (installed by krew) prints $NAME $VERSION"

# 5. Reproducible: the same sources and version give the same archive.
log "rebuilding ${host/_//} to compare sha256"
DIST=$sandbox/rebuild PLATFORMS=${host/_//} run "$sandbox/rebuild.log" hack/release.sh || fail "rebuild of $host"
want=$(grep "_${host}.tar.gz$" "$DIST/checksums.txt")
got=$(cat "$sandbox/rebuild/checksums.txt")
[ "$got" = "$want" ] || fail "the archive is not reproducible: first $want, then $got"
pass "a rebuild of ${host/_//} gives the same sha256"

log "rebuilding the mover image from the archives' linux binaries"
image=pvbackup-mover_${VERSION}.oci.tar
[ -f "$DIST/$image" ] || fail "$DIST/$image is missing (make release writes it with the linux archives)"
grep -q "  $image$" "$DIST/checksums.txt" || fail "$image is not listed in $DIST/checksums.txt"
(cd "$DIST" && grep "  $image$" checksums.txt | sha256sum --quiet -c -) >&2 || fail "$image does not match its sha256 in checksums.txt"
imagebins=()
for arch in amd64 arm64; do
	mkdir -p "$sandbox/image/$arch"
	tar -xzf "$DIST/${NAME}_${VERSION}_linux_$arch.tar.gz" -C "$sandbox/image/$arch" "$NAME" || fail "no $NAME in the linux/$arch archive"
	imagebins+=(--binary "$arch=$sandbox/image/$arch/$NAME")
done
run "$sandbox/image.log" go run ./hack/image "${imagebins[@]}" ${IMAGE_CERTS:+--certs "$IMAGE_CERTS"} \
	--ref "${IMAGE_REPO:-ghcr.io/kubectl-pvbackup/pvbackup-mover}:$VERSION" --version "$VERSION" --out "$sandbox/image.tar" ||
	fail "rebuild of the mover image"
cmp -s "$sandbox/image.tar" "$DIST/$image" ||
	fail "the mover image is not the archives' binaries rebuilt: $(sha256sum "$sandbox/image.tar" | cut -d' ' -f1) rebuilt, $(grep "  $image$" "$DIST/checksums.txt")"
pass "$image ($(du -m "$DIST/$image" | cut -f1) MiB) is in checksums.txt and is the linux/amd64 + linux/arm64 archives' binaries, rebuilt byte for byte"

# 6. The checks above fail when something is wrong.
good=$(grep "_${host}.tar.gz$" "$DIST/checksums.txt" | cut -d' ' -f1)
archive=$DIST/${NAME}_${VERSION}_${host}.tar.gz
mkdir -p "$sandbox/bad"
bad_sha=$(printf '%s' "$good" | tr '0-9a-f' '1-9a-f0')
sed "s/$good/$bad_sha/" "$manifest" >"$sandbox/bad/pvbackup.yaml"
if krew_install "$sandbox/krew-badsha" "${host%_*}" "${host#*_}" "$sandbox/bad/pvbackup.yaml" "$archive" "$sandbox/badsha.log" 2>/dev/null; then
	fail "krew installed an archive whose sha256 is not the manifest's"
fi
grep -qi "checksum" "$sandbox/badsha.log" || fail "a wrong sha256 failed for another reason: $(cat "$sandbox/badsha.log")"
pass "a wrong sha256 is refused"

mkdir -p "$sandbox/nobin"
tar -xzf "$archive" -C "$sandbox/nobin" LICENSE
tar -czf "$sandbox/bad/nobin.tar.gz" -C "$sandbox/nobin" LICENSE
nobin=$(sha256sum "$sandbox/bad/nobin.tar.gz" | cut -d' ' -f1)
sed "s/$good/$nobin/" "$manifest" >"$sandbox/bad/pvbackup.yaml"
if krew_install "$sandbox/krew-nobin" "${host%_*}" "${host#*_}" "$sandbox/bad/pvbackup.yaml" "$sandbox/bad/nobin.tar.gz" "$sandbox/nobin.log" 2>/dev/null; then
	fail "krew installed an archive without the binary"
fi
grep -q "no files in the plugin archive matched the glob pattern=$NAME$" "$sandbox/nobin.log" ||
	fail "an archive without the binary failed for another reason: $(cat "$sandbox/nobin.log")"
pass "an archive without the binary is refused"

sed "s/^  version: v/  version: /" "$manifest" >"$sandbox/bad/pvbackup.yaml"
if run "$sandbox/badversion.log" "$BIN/validate-krew-manifest" -manifest "$sandbox/bad/pvbackup.yaml" -skip-install 2>/dev/null; then
	fail "validate-krew-manifest accepted a version without its v"
fi
grep -q "failed to parse plugin version" "$sandbox/badversion.log" ||
	fail "a version without its v failed for another reason: $(cat "$sandbox/badversion.log")"
pass "a version without its v is refused"
log "release-check: $VERSION installs with krew $KREW_VERSION on all $(wc -w <<<"$platforms") platforms"
