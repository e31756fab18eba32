#!/usr/bin/env bash
# Builds what the local test cluster needs beyond hack/tools.sh, into .local/bin and .local/images:
#
#   hack/cluster-build.sh csi      csi-provisioner v5.3.0, csi-snapshotter + snapshot-controller v8.4.0,
#                                  the snapshot and group snapshot CRDs (.local/cluster-crds), the test CSI driver
#   hack/cluster-build.sh images   the pause and busybox image tarballs (.local/images)
#   hack/cluster-build.sh all      both
#
# Everything is cached: a second run returns in seconds, and the sidecars come from the machine's
# tool cache (hack/toolcache.sh) in a fresh checkout. The sidecars' go.mod files carry `replace`
# lines, so `go install pkg@version` cannot build them: their module directories are copied out of
# the module cache and built in place (shared/notes/local-cluster.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.local/bin
BUILD=$ROOT/.local/build
IMAGES=$ROOT/.local/images
PROVISIONER_VERSION=v5.3.0
SNAPSHOTTER_VERSION=v8.4.0
mkdir -p "$BIN" "$BUILD" "$IMAGES"

log() { printf '>>> %s\n' "$*" >&2; }
# shellcheck source=hack/toolcache.sh
. "$ROOT/hack/toolcache.sh"

# module_dir copies MODULE@VERSION out of the module cache into .local/build (writable) and prints the path.
module_dir() {
	local mod=$1 ver=$2 dir
	dir=$BUILD/$(basename "${mod%/v[0-9]*}")-$ver
	if [ ! -f "$dir/.copied" ]; then
		local src
		src=$(cd "$BUILD" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$mod@$ver" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
		[ -n "$src" ] || { echo "cannot download $mod@$ver" >&2; return 1; }
		rm -rf "$dir"
		cp -r "$src" "$dir"
		chmod -R u+w "$dir"
		touch "$dir/.copied"
	fi
	echo "$dir"
}

# have NAME VERSION: .local/bin/NAME is VERSION already, or the tool cache had it.
have() {
	local name=$1 ver=$2
	[ -x "$BIN/$name" ] && [ "$(cat "$BIN/.$name.version" 2>/dev/null)" = "$ver" ] && return 0
	from_cache "$name" "$(tool_key "$ver")" && echo "$ver" >"$BIN/.$name.version"
}

# build_in DIR NAME PKG VERSION builds ./PKG of the module in DIR as .local/bin/NAME (skipped when it has it).
build_in() {
	local dir=$1 name=$2 pkg=$3 ver=$4
	have "$name" "$ver" && return 0
	log "building $name $ver"
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$BIN/$name" "$pkg")
	to_cache "$name" "$(tool_key "$ver")"
	echo "$ver" >"$BIN/.$name.version"
}

csi() {
	local dir
	if ! have csi-provisioner "$PROVISIONER_VERSION"; then
		dir=$(module_dir github.com/kubernetes-csi/external-provisioner/v5 "$PROVISIONER_VERSION")
		build_in "$dir" csi-provisioner ./cmd/csi-provisioner "$PROVISIONER_VERSION"
	fi

	if ! have csi-snapshotter "$SNAPSHOTTER_VERSION" || ! have snapshot-controller "$SNAPSHOTTER_VERSION"; then
		dir=$(module_dir github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER_VERSION")
		# The module's ./client replace points into the repository; use the published client module instead.
		if grep -q '=> ./client' "$dir/go.mod"; then
			sed -i "s#=> ./client#=> github.com/kubernetes-csi/external-snapshotter/client/v8 $SNAPSHOTTER_VERSION#" "$dir/go.mod"
		fi
		build_in "$dir" csi-snapshotter ./cmd/csi-snapshotter "$SNAPSHOTTER_VERSION"
		build_in "$dir" snapshot-controller ./cmd/snapshot-controller "$SNAPSHOTTER_VERSION"
	fi

	crds

	# The project's own test driver: rebuilt every time (seconds with a warm cache) so edits take effect.
	(cd "$ROOT/test/csidriver" && CGO_ENABLED=0 go build -trimpath -o "$BIN/pvbackup-csi" .)
}

# crds copies the snapshot and group snapshot CRDs of the client module into .local/cluster-crds.
# The VolumeGroupSnapshotContent CRD converts between v1beta1 and v1beta2 (whose status differs)
# through external-snapshotter's conversion webhook, a Service the lab does not run: its
# `conversion:` stanza is dropped (strategy None) and v1beta1 is no longer served for it, so the
# lab serves group snapshot contents as v1beta2 alone, as the controllers use them. The other two
# group CRDs keep both versions (same schemas but for validations; no webhook).
crds() {
	local crds=$ROOT/.local/cluster-crds stamp="$SNAPSHOTTER_VERSION+groups"
	[ -f "$crds/.version" ] && [ "$(cat "$crds/.version")" = "$stamp" ] && return 0
	local client f
	client=$(module_dir github.com/kubernetes-csi/external-snapshotter/client/v8 "$SNAPSHOTTER_VERSION")
	rm -rf "$crds" && mkdir -p "$crds"
	cp "$client"/config/crd/snapshot.storage.k8s.io_*.yaml "$client"/config/crd/groupsnapshot.storage.k8s.io_*.yaml "$crds/"
	f=$crds/groupsnapshot.storage.k8s.io_volumegroupsnapshotcontents.yaml
	awk '/^  conversion:/ { skip = 1; next } skip && /^  [a-z]/ { skip = 0 } !skip' "$f" |
		awk '/^    name: v1beta1$/ { old = 1 } old && /^    served: true$/ { print "    served: false"; old = 0; next } { print }' >"$f.new"
	grep -q '^  conversion:' "$f.new" && { echo "$f: the conversion webhook is still there" >&2; return 1; }
	[ "$(grep -c '^    served: true$' "$f.new")" = 1 ] || { echo "$f: want v1beta2 alone served" >&2; return 1; }
	mv "$f.new" "$f"
	echo "$stamp" >"$crds/.version"
}

images() {
	(cd "$ROOT/test/csidriver" && CGO_ENABLED=0 go build -trimpath -o "$BIN/imagetar" ./cmd/imagetar &&
		CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$BUILD/pause" ./cmd/pause)
	[ -x /bin/busybox ] || { echo "busybox-static is not installed (hack/cluster.sh installs it)" >&2; return 1; }
	"$BIN/imagetar" -o "$IMAGES/pause.tar" -name localhost/pvbackup/pause:3.10 -file "$BUILD/pause:/pause" -entrypoint /pause
	"$BIN/imagetar" -o "$IMAGES/busybox.tar" -name localhost/pvbackup/busybox:1.35 -busybox /bin/busybox -cmd sh
}

case "${1:-all}" in
csi) csi ;;
images) images ;;
all)
	csi
	images
	;;
*)
	echo "usage: $0 csi|images|all" >&2
	exit 2
	;;
esac
