# shellcheck shell=bash
# Sourced by hack/tools.sh and hack/cluster-build.sh (which set BIN and log): a machine-wide cache
# of the third-party programs the project builds from pinned versions (Kubernetes, SeaweedFS, the
# CSI sidecars, fake-gcs-server, actionlint, kopia, Azurite's Node packages). A fresh checkout -
# CI's clone - copies them from here instead of relinking each one from Go's build cache, which
# takes minutes on two cores. Entries are keyed by name, version and the Go that built them, and
# written atomically, so checkouts side by side share them. PVBACKUP_TOOL_CACHE=off turns it off.
TOOL_CACHE=${PVBACKUP_TOOL_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/cache}/.cache}/kubectl-pvbackup/tools}

# tool_key VERSION: the cache key of a build of VERSION with this machine's Go.
tool_key() { printf '%s+%s' "$1" "$(go env GOVERSION)"; }

# from_cache NAME KEY: puts the cached build of NAME into $BIN/NAME; false when there is none.
from_cache() {
	[ "$TOOL_CACHE" != off ] && [ -x "$TOOL_CACHE/$1/$2" ] || return 1
	cp "$TOOL_CACHE/$1/$2" "$BIN/.$1.$$" && mv -f "$BIN/.$1.$$" "$BIN/$1"
	log "$1 $2 from $TOOL_CACHE"
}

# to_cache NAME KEY: keeps the fresh build $BIN/NAME for the next checkout.
to_cache() {
	[ "$TOOL_CACHE" != off ] || return 0
	mkdir -p "$TOOL_CACHE/$1" &&
		cp "$BIN/$1" "$TOOL_CACHE/$1/.$2.$$" && mv -f "$TOOL_CACHE/$1/.$2.$$" "$TOOL_CACHE/$1/$2"
}
