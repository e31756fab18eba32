#!/usr/bin/env bash
# Installs and builds the programs the tests, the demo and the benchmarks need, into .local/bin.
# Everything is cached: a second run on a warm machine returns in seconds, and a fresh checkout on
# it copies the programs from the machine's tool cache (hack/toolcache.sh) instead of building them.
#
#   hack/tools.sh apt          Debian packages (etcd, containerd, runc, CNI plugins, ...)
#   hack/tools.sh kube         kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl
#   hack/tools.sh controlplane etcd, kube-apiserver, kube-controller-manager: what the resource integration tests need
#   hack/tools.sh seaweedfs    SeaweedFS (weed): the local S3 server
#   hack/tools.sh fakegcs      fake-gcs-server: the local GCS server (gs://)
#   hack/tools.sh azurite      Azurite (npm, into the tool cache): the local Azure Blob server (azblob://)
#   hack/tools.sh stores       all three object stores
#   hack/tools.sh kopia        the kopia CLI, for benchmarks
#   hack/tools.sh staticcheck  the linter
#   hack/tools.sh actionlint   the GitHub Actions workflow linter (and shellcheck, which it runs on run: steps)
#   hack/tools.sh all          everything above
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.local/bin
BUILD=$ROOT/.local/build
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.37.0
NODE_VERSION=22.23.3
mkdir -p "$BIN" "$BUILD"

log() { printf '>>> %s\n' "$*" >&2; }
# shellcheck source=hack/toolcache.sh
. "$ROOT/hack/toolcache.sh"

apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	# apt may be slow on a fresh machine; retry once on a transient mirror error.
	DEBIAN_FRONTEND=noninteractive apt-get update -qq || DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# kube_build builds the named commands of k8s.io/kubernetes at KUBE_VERSION through a wrapper module
# that replaces every staging module with its published v0.x.y (the notes in shared/ explain why).
kube_build() {
	local want=() c
	for c in "$@"; do
		# kubectl has no --version flag: `kubectl version --client` prints the version.
		[ -x "$BIN/$c" ] && { [ "$c" = kubectl ] && "$BIN/$c" version --client 2>/dev/null || "$BIN/$c" --version 2>/dev/null; } | grep "$KUBE_VERSION" >/dev/null && continue
		from_cache "$c" "$(tool_key "$KUBE_VERSION")" && continue
		want+=("$c")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	local mod=$BUILD/kube-$KUBE_VERSION minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	mkdir -p "$mod"
	if [ ! -f "$mod/go.sum" ]; then
		log "preparing wrapper module for k8s.io/kubernetes $KUBE_VERSION"
		local gomod
		gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
		{
			echo "module pvbackup.local/kubebuild"
			echo
			sed -n 's/^go \(.*\)/go \1/p' "$gomod"
			echo
			echo "require k8s.io/kubernetes $KUBE_VERSION"
			echo
			grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk -v v="v0.${minor}.${KUBE_VERSION##*.}" '{print "replace " $1 " => " $1 " " v}'
		} >"$mod/go.mod"
		printf 'package kubebuild\n' >"$mod/doc.go"
	fi
	local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
	for c in "${want[@]}"; do
		log "building $c $KUBE_VERSION (a cold build of kube-apiserver takes ~7 minutes on 2 cores)"
		(cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c")
		to_cache "$c" "$(tool_key "$KUBE_VERSION")"
	done
}

# mod_build builds package PKG of module MOD at VER into .local/bin/NAME through a throwaway module,
# for programs whose `go install pkg@version` the proxy refuses (no version list) or that need replaces.
mod_build() {
	local name=$1 mod=$2 ver=$3 pkg=$4
	local stamp=$BIN/.$name.version
	[ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ver" ] && return 0
	from_cache "$name" "$(tool_key "$ver")" && { echo "$ver" >"$stamp"; return 0; }
	local dir=$BUILD/$name-$ver
	mkdir -p "$dir"
	if [ ! -f "$dir/go.mod" ]; then
		(cd "$dir" && go mod init pvbackup.local/build/$name >/dev/null 2>&1 && printf 'package build\n' >doc.go &&
			GOFLAGS=-mod=mod go get "$mod@$ver" >/dev/null)
	fi
	log "building $name ($mod $ver)"
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$BIN/$name" "$pkg")
	to_cache "$name" "$(tool_key "$ver")"
	echo "$ver" >"$stamp"
}

etcd_link() {
	apt_install etcd-server
	ln -sf /usr/bin/etcd "$BIN/etcd"
}

case "${1:-all}" in
apt)
	apt_install etcd-server containerd runc containernetworking-plugins iptables conntrack socat ethtool ebtables kmod openssl iproute2 util-linux
	ln -sf /usr/bin/etcd "$BIN/etcd"
	;;
controlplane)
	etcd_link
	kube_build kube-apiserver kube-controller-manager
	;;
kube)
	kube_build kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
	;;
seaweedfs)
	# A real production S3 server for the storage suites and the cluster (~10 minutes cold, 2.6 GiB of build cache).
	mod_build weed github.com/seaweedfs/seaweedfs v0.0.0-20261109003541-7506e5f91cd6 github.com/seaweedfs/seaweedfs/weed
	;;
fakegcs)
	# A GCS server (JSON and XML APIs) for the gs:// storage suites and e2e: a Go program, ~1 minute cold.
	mod_build fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" github.com/fsouza/fake-gcs-server
	;;
azurite)
	# Azure's own Blob storage emulator for the azblob:// suites and e2e, from npm, pinned, into the
	# tool cache (else .local/node). Azurite $AZURITE_VERSION needs Node >= 22; Debian 12's nodejs is
	# 18, so a Node of that major comes from npm too (the `node` package, whose binaries npm serves)
	# when the machine's is older. .local/bin/azurite-blob runs Azurite with the Node chosen.
	command -v npm >/dev/null 2>&1 || apt_install nodejs npm
	dir=$ROOT/.local/node
	[ "$TOOL_CACHE" = off ] || dir=$TOOL_CACHE/azurite/$AZURITE_VERSION+node$NODE_VERSION
	node_bin=$(command -v node)
	if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ]; then
		node_bin=$dir/node_modules/node/bin/node
	fi
	main=$dir/node_modules/azurite/dist/src/blob/main.js
	mkdir -p "$dir"
	(
		# One install at a time into a shared directory; a finished one is marked by .installed.
		flock 9
		if [ ! -f "$dir/.installed" ] || [ ! -f "$main" ] || [ ! -x "$node_bin" ]; then
			pkgs=("azurite@$AZURITE_VERSION")
			[ "$node_bin" = "$dir/node_modules/node/bin/node" ] && pkgs+=("node@$NODE_VERSION")
			log "installing ${pkgs[*]} (npm) into $dir"
			(cd "$dir" && npm install --silent --no-audit --no-fund --no-save --prefix . "${pkgs[@]}" >/dev/null)
			touch "$dir/.installed"
		fi
	) 9>"$dir.lock"
	want="azurite@$AZURITE_VERSION $node_bin"
	if [ "$(cat "$BIN/.azurite.version" 2>/dev/null)" != "$want" ] || [ ! -x "$BIN/azurite-blob" ]; then
		rm -f "$BIN/azurite-blob"
		printf '#!/bin/sh\nexec %q %q "$@"\n' "$node_bin" "$main" >"$BIN/azurite-blob"
		chmod +x "$BIN/azurite-blob"
		"$BIN/azurite-blob" --version >/dev/null
		echo "$want" >"$BIN/.azurite.version"
	fi
	;;
stores)
	"$0" seaweedfs
	"$0" fakegcs
	"$0" azurite
	;;
kopia)
	# The reference tool of the mover benchmarks, from the same module version the mover links.
	mod_build kopia github.com/kopia/kopia v0.22.3 github.com/kopia/kopia
	;;
staticcheck)
	[ -x "$BIN/staticcheck" ] || GOBIN=$BIN go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	;;
actionlint)
	apt_install shellcheck
	ACTIONLINT_VERSION=v1.7.12
	have() { go version -m "$BIN/actionlint" 2>/dev/null | grep -qE "^\s+mod\s+github.com/rhysd/actionlint\s+$ACTIONLINT_VERSION\s"; }
	have || { from_cache actionlint "$(tool_key "$ACTIONLINT_VERSION")" && have; } ||
		{ log "building actionlint $ACTIONLINT_VERSION"; GOBIN=$BIN CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" &&
			to_cache actionlint "$(tool_key "$ACTIONLINT_VERSION")"; }
	;;
all)
	"$0" apt
	"$0" kube
	;;
*)
	echo "usage: $0 apt|controlplane|kube|seaweedfs|fakegcs|azurite|stores|kopia|staticcheck|actionlint|all" >&2
	exit 2
	;;
esac
