# shellcheck shell=bash
# The lab's OCI registries, sourced by hack/cluster.sh: one component (hack/lab-registry, a Go
# program serving go-containerregistry's registry) on the gateway address, with an open registry on
# :5000 and one that requires basic auth on :5001, both plain HTTP; and the containerd hosts
# configuration that lets the nodes pull from them over HTTP. The password is made at each `up`
# and written into .local/cluster/env with the rest of the lab's settings.
#
# Uses from hack/cluster.sh: ROOT, BIN, STATE, GATEWAY, LOGS, start, wait_until, log.

REGISTRY_PORT=5000
REGISTRY_AUTH_PORT=5001
REGISTRY_USER=pvbackup

# registry_build builds the registry program into .local/bin (cached by go build).
registry_build() {
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN/lab-registry" ./hack/lab-registry)
}

# registry_config DIR makes the authenticated registry's password and writes containerd's hosts.toml
# for both registries under DIR (containerd's registry config_path): pulls go to http://, never https://.
registry_config() {
	local dir=$1 port host
	(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/conf/registry-password")
	for port in $REGISTRY_PORT $REGISTRY_AUTH_PORT; do
		host=$GATEWAY:$port
		mkdir -p "$dir/$host"
		cat >"$dir/$host/hosts.toml" <<EOF
server = "http://$host"

[host."http://$host"]
  capabilities = ["pull", "resolve"]
EOF
	done
}

# registry_start starts the registries (after the network is up, and registry_config) and waits until both answer: the
# open one 200, the authenticated one 401 without credentials and 200 with them.
registry_start() {
	local pass=$STATE/conf/registry-password
	mkdir -p "$STATE/registry"
	start lab-registry "$BIN/lab-registry" --listen "$GATEWAY:$REGISTRY_PORT" --auth-listen "$GATEWAY:$REGISTRY_AUTH_PORT" \
		--user "$REGISTRY_USER" --password-file "$pass" --dir "$STATE/registry"
	wait_until "the lab registry" 30 curl -sf "http://$GATEWAY:$REGISTRY_PORT/v2/"
	wait_until "the lab registry's basic auth" 30 registry_auth_ok "$pass"
}

registry_auth_ok() {
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$GATEWAY:$REGISTRY_AUTH_PORT/v2/")" = 401 ] &&
		curl -sf -o /dev/null --user "$REGISTRY_USER:$(cat "$1")" "http://$GATEWAY:$REGISTRY_AUTH_PORT/v2/"
}

# registry_env prints the lines of .local/cluster/env that name the registries.
registry_env() {
	cat <<EOF
export PVBACKUP_REGISTRY=$GATEWAY:$REGISTRY_PORT
export PVBACKUP_REGISTRY_AUTH=$GATEWAY:$REGISTRY_AUTH_PORT
export PVBACKUP_REGISTRY_USER=$REGISTRY_USER
export PVBACKUP_REGISTRY_PASSWORD=$(cat "$STATE/conf/registry-password" 2>/dev/null)
EOF
}
