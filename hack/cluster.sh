#!/usr/bin/env bash
# A real three-node Kubernetes cluster with CSI snapshots and an S3 store, all as host processes
# (no docker, no systemd), for the end-to-end tests and the demo; the lab's registries are in
# hack/lab-registry.sh. Needs root.
#
# Nodes (one control plane, three kubelets on this host, each with its own containerd, cgroup root,
# certificate, root dir and ports; one CNI bridge and one kube-proxy for all):
#   pvbackup-node    zone-a   pods 10.244.0.2-254   kubelet :10250
#   pvbackup-node-b  zone-b   pods 10.244.1.2-254   kubelet :10350
#   pvbackup-node-c  zone-b   pods 10.244.2.2-254   kubelet :10450
# Storage (test/csidriver, one process per driver serving every node): csi-dir (default; reachable
# from every node), csi-zonal (one zone, attached to one node at a time), csi-local (one node); each
# with filesystem and block (a loop device per volume) volumes and snapshots; group snapshots
# (VolumeGroupSnapshot, cut while the members' pods are frozen) in csi-dir and csi-zonal.
#
#   hack/cluster.sh build              install and build what is missing, start nothing
#   hack/cluster.sh up                 install and build what is missing, start everything, wait until ready,
#                                      write .local/cluster/kubeconfig and .local/cluster/env
#   hack/cluster.sh down               stop every process by PID, kill pod tasks, unmount, remove all state
#   hack/cluster.sh status             which components run; exit 1 unless all do
#   hack/cluster.sh load-image TAR [BASE_NAME]
#                                      import an image tarball (docker-archive or OCI) into every node;
#                                      BASE_NAME names the images of an OCI archive that holds tags only.
#                                      Tarballs in .local/images/ are imported by every `up`.
#   hack/cluster.sh snapshot-controller stop|start
#                                      stop or start the snapshot controller alone (doctor's e2e test)
#   hack/cluster.sh kubelet stop|start NODE
#                                      stop or start one node's kubelet alone (the node goes NotReady;
#                                      its containers keep running, as when a node loses its kubelet)
#
# Layout: binaries in .local/bin, logs in .local/cluster/logs (kept after down), runtime state in
# /var/lib/pvbackup-cluster and /run/pvbackup-cluster (removed by down). Network: everything listens on
# 127.0.0.1 or on 10.244.0.1, the gateway of the cni0 bridge (pods 10.244.0.0/22, each node its own
# /24 of it; services 10.244.240.0/20); traffic from pods is confined to the bridge and the host.
# Versions, settings and how to add a component: docs/local-cluster.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.local/bin
IMAGES=$ROOT/.local/images
OUT=$ROOT/.local/cluster
LOGS=$OUT/logs
STATE=/var/lib/pvbackup-cluster
RUN=/run/pvbackup-cluster
PIDS=$RUN/pids
PKI=$STATE/pki

GATEWAY=10.244.0.1
POD_CIDR=10.244.0.0/22 # the bridge's subnet: node i gets pod addresses 10.244.i.2-254 of it
HARNESS_CIDR=10.244.0.0/16
SERVICE_CIDR=10.244.240.0/20
KUBERNETES_SVC_IP=10.244.240.1
BRIDGE=cni0
BRIDGE_MAC=0a:58:0a:f4:00:01 # locally administered, from the gateway address (as the CNI bridge plugin once did)
APISERVER=https://$GATEWAY:6443
ETCD_CLIENT=http://127.0.0.1:12379
S3_PORT=8333
S3_BUCKET=pvbackup
S3_ACCESS_KEY=pvbackup
S3_SECRET_KEY=pvbackup-local-secret
PAUSE_IMAGE=localhost/pvbackup/pause:3.10
TEST_IMAGE=localhost/pvbackup/busybox:1.35
ISOLATE_CHAIN=PVBACKUP-ISOLATE
# shellcheck source=hack/lab-registry.sh
. "$ROOT/hack/lab-registry.sh"
CGROUP_PARENT=pvbackup-cluster # every node's pod cgroups live under /<this>/<node>/kubepods

# The nodes, by index: name and zone. Everything else of a node derives from its index (node_*).
NODES=(pvbackup-node pvbackup-node-b pvbackup-node-c)
ZONES=(zone-a zone-b zone-b)
ZONE_LABEL=topology.kubernetes.io/zone

# The test CSI drivers: one process each (test/csidriver --type), serving every node, with its own
# csi-provisioner and csi-snapshotter. csi_* derive the rest from the type.
CSI_TYPES=(dir zonal local)

node_dir() { echo "$STATE/${NODES[$1]}"; }                  # kubelet root, containerd root, configs
node_run() { echo "$RUN/${NODES[$1]}"; }                    # containerd state and socket
node_sock() { echo "$(node_run "$1")/containerd.sock"; }    # the node's containerd
node_kubelet_dir() { echo "$(node_dir "$1")/kubelet"; }     # kubelet --root-dir
node_port() { echo $((10250 + 100 * $1)); }                 # kubelet HTTPS (the apiserver's way in)
node_healthz_port() { echo $((10248 + 100 * $1)); }         # kubelet healthz, on 127.0.0.1
node_cgroup() { echo "/$CGROUP_PARENT/${NODES[$1]}"; }      # kubelet cgroupRoot
node_pod_range() { echo "10.244.$1.2 10.244.$1.254"; }      # host-local IPAM range of the node
csi_name() { echo "$1.csi.pvbackup.io"; }                   # CSI driver name of a type
csi_dir() { echo "$STATE/csi/$1"; }                         # its data
csi_controller_sock() { echo "$(csi_dir "$1")/controller.sock"; }
csi_node_sock() { echo "$(node_kubelet_dir "$2")/plugins/$(csi_name "$1")/csi.sock"; } # TYPE NODE_INDEX

# Start order; down stops them in reverse. Per-node and per-driver components carry the node's or
# the driver type's name.
components() {
	local i t
	echo etcd kube-apiserver kube-controller-manager kube-scheduler
	for i in "${!NODES[@]}"; do echo "containerd-${NODES[$i]}"; done
	for i in "${!NODES[@]}"; do echo "kubelet-${NODES[$i]}"; done
	echo kube-proxy snapshot-controller
	for t in "${CSI_TYPES[@]}"; do echo "csi-$t csi-provisioner-$t csi-snapshotter-$t"; done
	echo seaweedfs lab-registry
}
mapfile -t COMPONENTS < <(components | tr ' ' '\n')

log() { printf '>>> %s\n' "$*" >&2; }
die() {
	printf 'cluster: %s\n' "$*" >&2
	exit 1
}
kubectl() { "$BIN/kubectl" --kubeconfig "$OUT/kubeconfig" "$@"; }
ctr() { # ctr NODE_INDEX ARGS...: ctr on that node's containerd, namespace k8s.io
	local i=$1
	shift
	/usr/bin/ctr --address "$(node_sock "$i")" -n k8s.io "$@"
}

# ---------------------------------------------------------------- processes

pidof_component() {
	local f=$PIDS/$1.pid pid exe
	[ -f "$f" ] || return 1
	read -r pid exe <"$f"
	[ -d "/proc/$pid" ] || return 1
	# Guard against PID reuse: the process must still run the binary we started.
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || return 1
	echo "$pid"
}

# start NAME BINARY ARGS... runs BINARY in its own session with its output in .local/cluster/logs/NAME.log.
start() {
	local name=$1 bin=$2
	shift 2
	local exe
	exe=$(readlink -f "$bin")
	# Only stdio is passed on: a component that inherited the caller's other open files would hold
	# them for the cluster's life — `flock /work/locks/cluster make demo` left the lock held by the
	# cluster it started, and the next `flock ... hack/cluster.sh down` waited for ever.
	(
		close_fds
		exec setsid "$exe" "$@"
	) >"$LOGS/$name.log" 2>&1 </dev/null &
	local pid=$! i
	echo "$pid $exe" >"$PIDS/$name.pid"
	STARTED+=("$name")
	# The child runs setsid first and execs the binary just after: wait for that, so that a check
	# right after start does not take the setsid moment for a dead component.
	for i in $(seq 1 100); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] && return 0
		[ -d "/proc/$pid" ] || break
		sleep 0.05
	done
	check_alive
}

# close_fds closes every open file of this (sub)shell but stdin, stdout and stderr.
close_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
	done
}

tail_log() {
	printf '\n----- last lines of %s -----\n' "$LOGS/$1.log" >&2
	tail -n "${2:-40}" "$LOGS/$1.log" >&2 2>/dev/null || true
}

check_alive() {
	local c
	for c in "${STARTED[@]}"; do
		if ! pidof_component "$c" >/dev/null; then
			tail_log "$c"
			die "$c exited during start-up (log: $LOGS/$c.log)"
		fi
	done
}

# wait_until DESCRIPTION SECONDS COMMAND... polls COMMAND every 0.5 s until it succeeds; fails fast,
# with the log tail, if a started component dies, and with the last output of COMMAND on timeout.
wait_until() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs)) out
	while true; do
		if out=$("$@" 2>&1); then
			return 0
		fi
		check_alive
		if [ $SECONDS -ge $deadline ]; then
			printf '%s\n' "$out" | tail -n 20 >&2
			die "timed out after ${secs}s waiting for $what"
		fi
		sleep 0.5
	done
}

# stop_components NAME... sends SIGTERM to the named components at once, waits up to 20 s for them
# to exit, then SIGKILLs the rest.
stop_components() {
	local name pid t0=$SECONDS pids=() names=()
	for name in "$@"; do
		if pid=$(pidof_component "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$name")
		fi
	done
	local i j alive
	for i in $(seq 1 200); do
		alive=
		for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for j in "${!pids[@]}"; do
		if [ -d "/proc/${pids[$j]}" ]; then
			log "${names[$j]} (pid ${pids[$j]}) did not stop in 20 s: SIGKILL"
			kill -KILL "${pids[$j]}" 2>/dev/null || true
			while [ -d "/proc/${pids[$j]}" ]; do sleep 0.1; done
		fi
	done
	[ $((SECONDS - t0)) -lt 5 ] || log "$* took $((SECONDS - t0))s to stop"
	for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}

# pod_cgroups lists the pod cgroup trees of every node (and /kubepods of a cluster started by an
# older, single-node version of this script).
pod_cgroups() {
	local f
	for f in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT" /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$f" ] && echo "$f"
	done
	return 0
}

# pod_pids lists the processes in the kubelets' pod cgroups: every container, pause included.
pod_pids() {
	local f
	for f in $(pod_cgroups); do
		find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true
	done | sort -un
}

# cgroups_up makes each node's cgroup root, which the kubelet requires to exist (cgroupRoot): on
# cgroup v1 in every hierarchy (cpuset with the parent's CPUs and memory nodes), on v2 once with
# the controllers enabled for its children.
cgroups_up() {
	local i h d c
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		mkdir -p "/sys/fs/cgroup/$CGROUP_PARENT"
		for c in $(cat /sys/fs/cgroup/cgroup.subtree_control); do
			echo "+$c" >"/sys/fs/cgroup/$CGROUP_PARENT/cgroup.subtree_control" 2>/dev/null || true
		done
		for i in "${!NODES[@]}"; do mkdir -p "/sys/fs/cgroup$(node_cgroup "$i")"; done
		return 0
	fi
	for h in /sys/fs/cgroup/*/; do
		[ -L "${h%/}" ] && continue
		for i in "${!NODES[@]}"; do
			mkdir -p "${h%/}$(node_cgroup "$i")"
		done
		if [ -f "${h}cpuset.cpus" ]; then
			for d in "${h}$CGROUP_PARENT" "${h}$CGROUP_PARENT"/*/; do
				d=${d%/}
				cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
				cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
			done
		fi
	done
}

cgroups_down() {
	local f
	for f in $(pod_cgroups); do
		find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

# ---------------------------------------------------------------- install and build

install_and_build() {
	"$ROOT/hack/tools.sh" apt
	# busybox-static: the test workload image; curl: health checks.
	local p missing=()
	for p in busybox-static curl; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			{ DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
	fi
	"$ROOT/hack/tools.sh" kube
	"$ROOT/hack/tools.sh" seaweedfs
	"$ROOT/hack/cluster-build.sh" all
	registry_build # lab registry
}

# ---------------------------------------------------------------- certificates and configs

cert() { # cert NAME CN O [SANS]
	local name=$1 cn=$2 o=$3 sans=${4:-}
	local subj="/CN=$cn"
	[ -n "$o" ] && subj="/O=$o$subj"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/$name.key" \
		-out "$PKI/$name.csr" -subj "$subj" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=serverAuth,clientAuth"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
	mkdir -p "$PKI" && chmod 700 "$PKI"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/ca.key" \
		-out "$PKI/ca.crt" -days 3650 -subj "/CN=pvbackup-cluster-ca" 2>/dev/null
	cert apiserver kube-apiserver "" \
		"IP:$GATEWAY,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin pvbackup-admin system:masters
	cert controller-manager system:kube-controller-manager ""
	cert scheduler system:kube-scheduler ""
	local i
	for i in "${!NODES[@]}"; do
		cert "kubelet-${NODES[$i]}" "system:node:${NODES[$i]}" system:nodes "IP:$GATEWAY,DNS:${NODES[$i]}"
	done
	cert kube-proxy system:kube-proxy ""
	openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

kubeconfig() { # kubeconfig FILE CERTNAME
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pvbackup
  cluster:
    server: $APISERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: pvbackup
  context: {cluster: pvbackup, user: $2}
current-context: pvbackup
EOF
	chmod 600 "$1"
}

write_configs() {
	mkdir -p "$STATE/conf"
	local c i
	for c in admin controller-manager scheduler kube-proxy; do
		kubeconfig "$STATE/conf/$c.kubeconfig" "$c"
	done
	: >"$STATE/conf/resolv.conf" # no DNS server: pods use IP addresses, nothing leaves the machine
	cat >"$STATE/conf/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/conf/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: ${NODES[0]}
bindAddress: $GATEWAY
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
	registry_config "$STATE/conf/certs.d" # lab registry: one hosts configuration for every node's containerd
	for i in "${!NODES[@]}"; do write_node_configs "$i"; done
}

# write_node_configs I writes node I's kubeconfig, containerd config, CNI config and kubelet config
# into its directory.
write_node_configs() {
	local i=$1 dir run
	dir=$(node_dir "$i") run=$(node_run "$i")
	mkdir -p "$dir/conf" "$dir/cni/net.d" "$run"
	kubeconfig "$dir/conf/kubelet.kubeconfig" "kubelet-${NODES[$i]}"

	cat >"$dir/conf/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$run/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$(node_sock "$i")"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc (oom_score_adj -998).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  # lab registry: pulls from the registries on the gateway go over plain HTTP (hack/lab-registry.sh)
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/conf/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd-opt"
EOF

	# One bridge and subnet for all nodes (pods of every node reach each other and the gateway
	# directly); each node hands out addresses from its own /24 of it, with its own leases.
	local range
	read -ra range <<<"$(node_pod_range "$i")"
	cat >"$dir/cni/net.d/10-pvbackup.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "pvbackup",
  "plugins": [{
    "type": "bridge",
    "bridge": "$BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": "$dir/cni/ipam",
      "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY", "rangeStart": "${range[0]}", "rangeEnd": "${range[1]}"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF

	cat >"$dir/conf/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: $(node_port "$i")
healthzBindAddress: 127.0.0.1
healthzPort: $(node_healthz_port "$i")
readOnlyPort: 0
containerRuntimeEndpoint: unix://$(node_sock "$i")
cgroupDriver: cgroupfs
cgroupRoot: $(node_cgroup "$i")
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-${NODES[$i]}.crt
tlsPrivateKeyFile: $PKI/kubelet-${NODES[$i]}.key
clusterDomain: cluster.local
resolvConf: $STATE/conf/resolv.conf
podLogsDir: $dir/pod-logs
# A small or busy disk must not evict the test pods or collect the imported (unpullable) images.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
syncFrequency: 10s
fileCheckFrequency: 10s
EOF
}

# ---------------------------------------------------------------- network

network_up() {
	sysctl -qw net.ipv4.ip_forward=1
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
	fi
	# A fixed MAC. A bridge whose MAC was never set takes the lowest MAC of its ports, so it changed
	# whenever a pod's veth came or went; a pod that had already resolved the gateway then sent its
	# frames to a MAC no longer on the bridge, and its connections stalled until its ARP entry
	# expired (15-45 s + probes): the "27 s in one S3 GET" mover stall (docs/volumes.md). The
	# CNI bridge plugin adopts an existing bridge as it is, so the MAC must be set here.
	ip link set dev "$BRIDGE" address "$BRIDGE_MAC"
	# One address only: the CNI bridge plugin refuses a bridge with another IPv4 address.
	ip -4 addr flush dev "$BRIDGE"
	ip addr add "$GATEWAY/${POD_CIDR#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Every harness address (pods, services) routes to the bridge, never to the default route.
	ip route replace "$HARNESS_CIDR" dev "$BRIDGE"
	# Pods may talk to each other and to the host, nothing else.
	iptables -N "$ISOLATE_CHAIN" 2>/dev/null || iptables -F "$ISOLATE_CHAIN"
	iptables -A "$ISOLATE_CHAIN" -i "$BRIDGE" ! -o "$BRIDGE" -j REJECT
	iptables -C FORWARD -j "$ISOLATE_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$ISOLATE_CHAIN"
}

# iptables_cleanup removes the KUBE-* chains the kubelet and kube-proxy made (nothing else on this
# machine runs them) and the rules that jump to them.
iptables_cleanup() {
	local cmd t rule chains c
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null || continue
		for t in filter nat mangle; do
			while read -r rule; do
				[ -n "$rule" ] && eval "$cmd -t $t ${rule/-A/-D}" 2>/dev/null || true
			done <<<"$($cmd -t $t -S 2>/dev/null | grep -E -- '-j KUBE-' | grep -vE '^-A KUBE-' || true)"
			chains=$($cmd -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}')
			for c in $chains; do $cmd -t "$t" -F "$c" 2>/dev/null || true; done
			for c in $chains; do $cmd -t "$t" -X "$c" 2>/dev/null || true; done
		done
	done
}

network_down() {
	while iptables -D FORWARD -j "$ISOLATE_CHAIN" 2>/dev/null; do :; done
	iptables -F "$ISOLATE_CHAIN" 2>/dev/null || true
	iptables -X "$ISOLATE_CHAIN" 2>/dev/null || true
	ip route del "$HARNESS_CIDR" dev "$BRIDGE" 2>/dev/null || true
	ip link del "$BRIDGE" 2>/dev/null || true
}

# ---------------------------------------------------------------- components

# start_apiserver starts etcd, waits for it, and starts kube-apiserver.
start_apiserver() {
	start etcd "$BIN/etcd" --name pvbackup --data-dir "$STATE/etcd" \
		--listen-client-urls "$ETCD_CLIENT" --advertise-client-urls "$ETCD_CLIENT" \
		--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
		--initial-cluster pvbackup=http://127.0.0.1:12380 --listen-metrics-urls=http://127.0.0.1:12381 \
		--snapshot-count 10000 --quota-backend-bytes 2147483648
	wait_until "etcd" 60 curl -sf "$ETCD_CLIENT/health"

	start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "$ETCD_CLIENT" \
		--bind-address "$GATEWAY" --advertise-address "$GATEWAY" --secure-port 6443 \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC --allow-privileged=true --profiling=false --v=1
}

# start_controllers waits for the apiserver and starts the controller-manager and the scheduler.
start_controllers() {
	local curl_admin=(curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
	wait_until "kube-apiserver /readyz" 120 "${curl_admin[@]}" "$APISERVER/readyz"

	start kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$STATE/conf/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v=1
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/conf/scheduler.kubeconfig" \
		--authentication-kubeconfig "$STATE/conf/scheduler.kubeconfig" \
		--authorization-kubeconfig "$STATE/conf/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

# import_images I [TARBALL...] imports the tarballs (default: all in .local/images) into node I's containerd.
import_images() {
	local i=$1 f
	shift
	local files=("$@")
	[ ${#files[@]} -gt 0 ] || files=("$IMAGES"/*.tar)
	for f in "${files[@]}"; do
		[ -f "$f" ] || continue
		ctr "$i" images import "$f" >/dev/null || {
			echo "import $f into the containerd of ${NODES[$i]} failed" >&2
			return 1
		}
	done
}

# on_every_node FUNCTION ARGS... runs FUNCTION NODE_INDEX ARGS... for all nodes at once and fails
# if any failed.
on_every_node() {
	local fn=$1 i rc=0 pids=()
	shift
	for i in "${!NODES[@]}"; do
		"$fn" "$i" "$@" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=1; done
	return $rc
}

start_containerd() {
	start "containerd-${NODES[$1]}" /usr/bin/containerd --config "$(node_dir "$1")/conf/containerd.toml"
}

# node_images I waits for node I's containerd and imports the images into it.
node_images() {
	local i=$1
	wait_until "containerd of ${NODES[$i]}" 60 /usr/bin/ctr --address "$(node_sock "$i")" version
	import_images "$i"
	ctr "$i" images ls -q | grep -x "$PAUSE_IMAGE" >/dev/null || {
		echo "the pause image $PAUSE_IMAGE is missing on ${NODES[$i]} after import" >&2
		return 1
	}
}

# start_kubelet I starts node I's kubelet, labelled with its zone.
start_kubelet() {
	local i=$1 root
	root=$(node_kubelet_dir "$i")
	mkdir -p "$root"
	start "kubelet-${NODES[$i]}" "$BIN/kubelet" --config "$(node_dir "$i")/conf/kubelet.yaml" \
		--kubeconfig "$(node_dir "$i")/conf/kubelet.kubeconfig" --root-dir "$root" \
		--hostname-override "${NODES[$i]}" --node-ip "$GATEWAY" --node-labels "$ZONE_LABEL=${ZONES[$i]}" --v=1
}

# storage_objects prints the CSIDrivers, StorageClasses, VolumeSnapshotClasses and
# VolumeGroupSnapshotClasses of the lab.
storage_objects() {
	local dir zonal local
	dir=$(csi_name dir) zonal=$(csi_name zonal) local=$(csi_name local)
	cat <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $dir}
spec: {attachRequired: false, podInfoOnMount: false, fsGroupPolicy: File, volumeLifecycleModes: [Persistent]}
---
# Cloud-disk like: the attach-detach controller makes a VolumeAttachment per node (the driver's own
# attacher answers it) and reports Multi-Attach for a ReadWriteOnce volume on a second node.
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $zonal}
spec: {attachRequired: true, podInfoOnMount: false, fsGroupPolicy: File, volumeLifecycleModes: [Persistent]}
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $local}
spec: {attachRequired: false, podInfoOnMount: false, fsGroupPolicy: File, volumeLifecycleModes: [Persistent]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-dir
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: $dir
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-dir-wffc}
provisioner: $dir
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-zonal}
provisioner: $zonal
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-zonal-immediate}
provisioner: $zonal
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-local}
provisioner: $local
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-dir
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $dir
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-dir-slow}
driver: $dir
deletionPolicy: Delete
parameters: {readyDelay: "20s"}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-dir-fail}
driver: $dir
deletionPolicy: Delete
parameters: {fail: "this VolumeSnapshotClass (csi-dir-fail) makes every snapshot fail, for tests"}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-zonal
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $zonal
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-local
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $local
deletionPolicy: Delete
---
# Group snapshots: the dir and zonal drivers (the local driver has no GroupController).
apiVersion: groupsnapshot.storage.k8s.io/v1beta2
kind: VolumeGroupSnapshotClass
metadata:
  name: csi-dir
  annotations: {groupsnapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $dir
deletionPolicy: Delete
---
apiVersion: groupsnapshot.storage.k8s.io/v1beta2
kind: VolumeGroupSnapshotClass
metadata: {name: csi-dir-fail}
driver: $dir
deletionPolicy: Delete
parameters: {fail: "this VolumeGroupSnapshotClass (csi-dir-fail) makes every group snapshot fail, for tests"}
---
apiVersion: groupsnapshot.storage.k8s.io/v1beta2
kind: VolumeGroupSnapshotClass
metadata:
  name: csi-zonal
  annotations: {groupsnapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $zonal
deletionPolicy: Delete
EOF
}

# start_csi TYPE starts the test CSI driver of TYPE, serving every node, and its sidecars.
start_csi() {
	local t=$1 i args=() admin=$STATE/conf/admin.kubeconfig
	for i in "${!NODES[@]}"; do
		# cgroup-root: a group snapshot freezes the pods (their cgroups under it) that use its members.
		args+=(--node "name=${NODES[$i]},zone=${ZONES[$i]},endpoint=$(csi_node_sock "$t" "$i"),registration-dir=$(node_kubelet_dir "$i")/plugins_registry,cgroup-root=$(node_cgroup "$i")")
	done
	[ "$t" = zonal ] && args+=(--attacher-server "$APISERVER" --attacher-tls "$PKI/ca.crt,$PKI/admin.crt,$PKI/admin.key")
	start "csi-$t" "$BIN/pvbackup-csi" --drivername "$(csi_name "$t")" --type "$t" --datadir "$(csi_dir "$t")" \
		--controller-endpoint "$(csi_controller_sock "$t")" --capacity 50Gi "${args[@]}"
	wait_until "the $t CSI driver's socket" 30 test -S "$(csi_controller_sock "$t")"
	# --strict-topology: a WaitForFirstConsumer volume is asked for on the selected node's zone or
	# node alone, so a node-local snapshot restored for another node fails (and is rescheduled).
	# --kube-api-qps/--kube-api-burst: see start_snapshot_controller.
	start "csi-provisioner-$t" "$BIN/csi-provisioner" --kubeconfig "$admin" --csi-address "$(csi_controller_sock "$t")" \
		--leader-election=false --timeout 60s --strict-topology --kube-api-qps 50 --kube-api-burst 100 --v=2
	# CSIVolumeGroupSnapshot: VolumeGroupSnapshotContents are answered through the driver's
	# GroupController (the local driver has none: its snapshotter logs that and cuts no groups).
	start "csi-snapshotter-$t" "$BIN/csi-snapshotter" --kubeconfig "$admin" --csi-address "$(csi_controller_sock "$t")" \
		--leader-election=false --timeout 60s --feature-gates=CSIVolumeGroupSnapshot=true \
		--kube-api-qps 50 --kube-api-burst 100 --v=2
}

start_storage() {
	kubectl apply --server-side -f "$ROOT/.local/cluster-crds/" >/dev/null
	wait_until "snapshot CRDs" 60 kubectl wait --for condition=established --timeout=1s \
		crd/volumesnapshots.snapshot.storage.k8s.io crd/volumesnapshotcontents.snapshot.storage.k8s.io \
		crd/volumesnapshotclasses.snapshot.storage.k8s.io crd/volumegroupsnapshots.groupsnapshot.storage.k8s.io \
		crd/volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io crd/volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io
	storage_objects | kubectl apply --server-side -f - >/dev/null

	start_snapshot_controller
	local t
	for t in "${CSI_TYPES[@]}"; do start_csi "$t"; done

	mkdir -p "$STATE/seaweedfs"
	export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
	# Small volumes, many of them, as test/s3server does: weed mini sizes volumes (up to 1 GiB) and
	# their number from the free disk, so on a fuller disk a second bucket (Velero's, in the Velero
	# lab) found no writable volume left (PutObject: 500). Nothing is preallocated.
	start seaweedfs "$BIN/weed" mini -dir="$STATE/seaweedfs" -ip="$GATEWAY" -ip.bind="$GATEWAY" \
		-bucket="$S3_BUCKET" -admin.ui=false -master.telemetry=false -webdav=false \
		-s3.port.iceberg=0 -s3.port.lance=0 -admin.port=12537 -admin.port.legacy=0 \
		-master.volumeSizeLimitMB=64 -volume.max=300
	registry_start # lab registry
}

# The snapshot controller runs with leader election: its Lease (kube-system/snapshot-controller-leader,
# renewed every 5 s) is how a client such as `kubectl pvbackup doctor` sees that a controller running
# outside the cluster's pods is alive. ReleaseLeaderElectionOnExit makes a stopped controller give the
# Lease up at once (instead of letting it expire 15 s later), so doctor's e2e test of a stopped
# controller keeps the cluster without one for seconds; a restarted controller takes it back at once.
# CSIVolumeGroupSnapshot (beta, off by default): the controller handles VolumeGroupSnapshots too
# (it then requires the group CRDs at start).
# --kube-api-qps 50 --kube-api-burst 100 (here and for the CSI sidecars; upstream's defaults are 5
# and 10): at 5 requests/s the controller took 60 s to make 60 VolumeSnapshots ready (make
# bench-scale: 120 throttled requests in its log) and every mover waited for it. Clusters that back
# up many volumes at once need the same (docs/volumes.md, "Many volumes").
start_snapshot_controller() {
	start snapshot-controller "$BIN/snapshot-controller" --kubeconfig "$STATE/conf/admin.kubeconfig" \
		--leader-election=true --leader-election-namespace=kube-system --kube-api-qps 50 --kube-api-burst 100 \
		--feature-gates=ReleaseLeaderElectionOnExit=true,CSIVolumeGroupSnapshot=true --v=2
}

# snapshot-controller stop|start: stop or start the snapshot controller alone, for the e2e test of
# doctor's "snapshot controller stopped" verdict (the test restarts it at once).
snapshot_controller() {
	pidof_component kube-apiserver >/dev/null || die "the cluster is not running (hack/cluster.sh up)"
	case "${1:-}" in
	stop) stop_components snapshot-controller ;;
	start)
		pidof_component snapshot-controller >/dev/null && return 0
		[ -f "$LOGS/snapshot-controller.log" ] && mv "$LOGS/snapshot-controller.log" "$LOGS/snapshot-controller.previous.log"
		STARTED=()
		start_snapshot_controller
		;;
	*) die "usage: hack/cluster.sh snapshot-controller stop|start" ;;
	esac
}

# kubelet stop|start NODE: stop or start one node's kubelet alone (fault tests: the node goes
# NotReady after the controller-manager's grace period, its pods keep running; start brings it back).
kubelet_cmd() {
	local op=${1:-} node=${2:-} i idx=
	for i in "${!NODES[@]}"; do [ "${NODES[$i]}" = "$node" ] && idx=$i; done
	[ -n "$idx" ] || die "usage: hack/cluster.sh kubelet stop|start NODE (NODE: ${NODES[*]})"
	pidof_component kube-apiserver >/dev/null || die "the cluster is not running (hack/cluster.sh up)"
	case "$op" in
	stop) stop_components "kubelet-$node" ;;
	start)
		pidof_component "kubelet-$node" >/dev/null && return 0
		[ -f "$LOGS/kubelet-$node.log" ] && mv "$LOGS/kubelet-$node.log" "$LOGS/kubelet-$node.previous.log"
		STARTED=()
		start_kubelet "$idx"
		wait_until "node $node Ready" 120 node_ready "$idx"
		;;
	*) die "usage: hack/cluster.sh kubelet stop|start NODE" ;;
	esac
}

s3_bucket_ok() {
	curl -sf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		"http://$GATEWAY:$S3_PORT/$S3_BUCKET?list-type=2&max-keys=1"
}

node_ready() { # node_ready I
	[ "$(kubectl get node "${NODES[$1]}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

nodes_ready() {
	local i
	for i in "${!NODES[@]}"; do node_ready "$i" || return 1; done
}

nodes_registered() {
	kubectl get node "${NODES[@]}" >/dev/null
}

# csi_registered: every driver registered with every kubelet (CSINode), so volumes can mount anywhere.
csi_registered() {
	local i t drivers
	for i in "${!NODES[@]}"; do
		drivers=$(kubectl get csinode "${NODES[$i]}" -o jsonpath='{.spec.drivers[*].name}') || return 1
		for t in "${CSI_TYPES[@]}"; do
			grep -w "$(csi_name "$t")" <<<"$drivers" >/dev/null || {
				echo "CSI driver $(csi_name "$t") not registered on ${NODES[$i]} (CSINode has: $drivers)"
				return 1
			}
		done
	done
}

write_outputs() {
	mkdir -p "$OUT"
	kubeconfig "$OUT/kubeconfig" admin
	local url="s3://$S3_BUCKET?endpoint=http://$GATEWAY:$S3_PORT&region=us-east-1&use_path_style=true&disable_https=true"
	cat >"$OUT/env" <<EOF
# Written by hack/cluster.sh up: source it to use the local test cluster.
export KUBECONFIG=$OUT/kubeconfig
export PVBACKUP_S3_ENDPOINT=http://$GATEWAY:$S3_PORT
export PVBACKUP_S3_ENDPOINT_IN_CLUSTER=http://$GATEWAY:$S3_PORT
export PVBACKUP_S3_BUCKET=$S3_BUCKET
export PVBACKUP_S3_URL='$url'
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_REGION=us-east-1
export PVBACKUP_STORAGE_CLASS=csi-dir
export PVBACKUP_SNAPSHOT_CLASS=csi-dir
export PVBACKUP_TEST_IMAGE=$TEST_IMAGE
export PVBACKUP_KUBECTL=$BIN/kubectl
# The lab's nodes (zones: ${ZONES[*]}) and its zonal and node-local classes (docs/local-cluster.md).
export PVBACKUP_NODES='${NODES[*]}'
export PVBACKUP_ZONAL_STORAGE_CLASS=csi-zonal
export PVBACKUP_LOCAL_STORAGE_CLASS=csi-local
# VolumeGroupSnapshotClasses (groupsnapshot.storage.k8s.io/v1beta2): csi-dir and csi-zonal; csi-local
# has none (its driver cuts no groups); csi-dir-fail fails every group with its reason.
export PVBACKUP_GROUP_SNAPSHOT_CLASS=csi-dir
export PVBACKUP_ZONAL_GROUP_SNAPSHOT_CLASS=csi-zonal
EOF
	registry_env >>"$OUT/env" # lab registry
}

running() {
	local c
	for c in "${COMPONENTS[@]}"; do
		pidof_component "$c" >/dev/null || return 1
	done
	[ -f "$PKI/ca.crt" ] || return 1
	curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER/readyz" >/dev/null
}

up() {
	[ "$(id -u)" = 0 ] || die "the local cluster needs root (it runs containerd, the kubelet and mounts)"
	local t0=$SECONDS
	install_and_build
	mkdir -p "$LOGS" "$OUT"
	if running; then
		log "cluster already running"
		on_every_node import_images
		write_outputs
		return 0
	fi
	if [ -d "$STATE" ] || [ -d "$RUN" ]; then
		log "cleaning up a stopped or partial cluster"
		down
	fi
	log "starting the cluster (logs: $LOGS)"
	rm -f "$LOGS"/*.log
	mkdir -p "$STATE" "$PIDS"
	STARTED=()
	# Whatever fails from here on (a command, a timeout, a dead component) stops what was started.
	trap 'if [ $? -ne 0 ] && [ -z "${CLUSTER_UP_DONE:-}" ]; then log "start-up failed: stopping what was started (logs are kept in $LOGS)"; down; fi' EXIT
	make_pki
	write_configs
	network_up
	cgroups_up
	# The containerds and etcd + kube-apiserver start together; the images are imported while the
	# apiserver comes up. A new node-side component goes in start_nodes, a cluster-wide one (a
	# registry, a server pods reach) in start_storage.
	local i
	for i in "${!NODES[@]}"; do start_containerd "$i"; done
	start_apiserver
	on_every_node node_images || die "importing the images failed"
	start_controllers
	start_nodes
	write_outputs
	wait_until "nodes ${NODES[*]} to register" 120 nodes_registered
	start_storage
	wait_until "nodes ${NODES[*]} Ready" 120 nodes_ready
	wait_until "ServiceAccount default/default" 60 kubectl get serviceaccount default -n default
	wait_until "the CSI drivers' registration with every kubelet" 60 csi_registered
	wait_until "SeaweedFS S3 with bucket $S3_BUCKET" 120 s3_bucket_ok
	wait_until "default StorageClass, VolumeSnapshotClass and VolumeGroupSnapshotClass" 30 \
		kubectl get storageclass/csi-dir volumesnapshotclass/csi-dir volumegroupsnapshotclass/csi-dir
	check_alive
	CLUSTER_UP_DONE=1
	trap - EXIT
	log "cluster up in $((SECONDS - t0))s: ${#NODES[@]} nodes; source $OUT/env"
}

# start_nodes starts every node's kubelet, and the one kube-proxy that serves them all.
start_nodes() {
	local i
	for i in "${!NODES[@]}"; do start_kubelet "$i"; done
	start kube-proxy "$BIN/kube-proxy" --config "$STATE/conf/kube-proxy.yaml" --v=1
}

# stop_containerd I stops node I's containerd and the shims it leaves behind.
stop_containerd() {
	local pid
	stop_components "containerd-${NODES[$1]}"
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $(node_sock "$1")" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

down() {
	local i pid c node_side=()
	# The node side first, so no new pods start while the rest goes.
	for c in $(printf '%s\n' "${COMPONENTS[@]}" | tac); do
		case "$c" in etcd | kube-apiserver | kube-controller-manager | kube-scheduler | containerd-*) ;; *) node_side+=("$c") ;; esac
	done
	stop_components "${node_side[@]}"
	# Pod containers (pause included) by PID, then the containerds, then the shims they leave behind.
	for i in $(seq 1 50); do
		pid=$(pod_pids)
		[ -z "$pid" ] && break
		kill -KILL $pid 2>/dev/null || true
		sleep 0.1
	done
	for i in "${!NODES[@]}"; do stop_containerd "$i"; done
	stop_components kube-scheduler kube-controller-manager kube-apiserver
	stop_components etcd
	stop_leftovers
	if [ -x "$BIN/kube-proxy" ]; then
		"$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	iptables_cleanup
	# Loop devices before the mounts (their backing files' paths read right until then).
	loops_down
	# Mounts: pod volumes, container root filesystems, shm, network namespaces; deepest first.
	local m
	for _ in 1 2 3; do
		m=$(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)|^/run/netns/cni-|^/var/run/netns/cni-" | sort -r || true)
		[ -z "$m" ] && break
		while read -r i; do umount -l "$i" 2>/dev/null || true; done <<<"$m"
	done
	for i in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$i" 2>/dev/null || true; done
	network_down
	cgroups_down
	rm -rf "$STATE" "$RUN"
	rm -f "$OUT/kubeconfig" "$OUT/env"
	local left
	left=$(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" || true)
	[ -z "$left" ] || die "mounts left behind: $left"
	# Every process of the cluster names its state directories on its command line.
	left=$(pgrep -af -- "$STATE|$RUN" | grep -v "^$$ " || true)
	[ -z "$left" ] || die "processes left behind: $left"
	left=$(pod_cgroups)
	[ -z "$left" ] || die "cgroups left behind: $left"
	left=$(cluster_loops)
	[ -z "$left" ] || die "loop devices left behind: $left"
	log "cluster down"
}

# cluster_loops lists the loop devices attached to files of the cluster ("DEVICE BACKING_FILE"
# lines): the drivers' block volume images, and the loops the kubelets attach to a block volume's
# device while a pod maps it (volumepathhandler's "fd lock", backed by the bind-mounted device
# under the kubelet's directory).
cluster_loops() {
	local f back
	for f in /sys/block/loop*/loop/backing_file; do
		[ -f "$f" ] || continue
		back=$(cat "$f" 2>/dev/null) || continue
		case "$back" in "$STATE"/* | "$RUN"/*) echo "/dev/$(basename "$(dirname "$(dirname "$f")")") $back" ;; esac
	done
	return 0
}

# loops_down detaches the cluster's loop devices: the kubelets' first (they hold the drivers'
# devices open), then the drivers'. A device still open goes at its last close (the pods'
# processes are gone by now).
loops_down() {
	local dev back i
	for i in 1 2 3 4 5; do
		[ -n "$(cluster_loops)" ] || return 0
		while read -r dev back; do
			case "$back" in "$STATE"/csi/*) ;; *) losetup -d "$dev" 2>/dev/null || true ;; esac
		done <<<"$(cluster_loops)"
		while read -r dev back; do
			[ -z "$dev" ] || losetup -d "$dev" 2>/dev/null || true
		done <<<"$(cluster_loops)"
		sleep 0.2
	done
}

# stop_leftovers stops components recorded under names this version does not start (a cluster
# started by an older version of this script), and their containerd's shims.
stop_leftovers() {
	local f name pid
	for f in "$PIDS"/*.pid; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .pid)
		stop_components "$name"
	done
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RUN/" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

status() {
	local c pid rc=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pidof_component "$c"); then
			printf '%-32s running (pid %s)\n' "$c" "$pid"
		else
			printf '%-32s stopped\n' "$c"
			rc=1
		fi
	done
	# 3 = NET_ADDR_SET: a bridge started by an older version of this script changes its MAC with
	# the pods' veths (see network_up).
	if [ -e "/sys/class/net/$BRIDGE" ] && [ "$(cat "/sys/class/net/$BRIDGE/addr_assign_type")" != 3 ]; then
		# A warning, not a failure: hack/e2e.sh starts a cluster when status fails.
		printf '%-32s warning: MAC not fixed, pods may stall for ~30 s when another pod goes (fix: ip link set dev %s address %s)\n' "$BRIDGE" "$BRIDGE" "$BRIDGE_MAC" >&2
	fi
	return $rc
}

# load-image TARBALL [BASE_NAME]: import into every node's containerd.
load_image() {
	local tar=${1:?usage: hack/cluster.sh load-image TARBALL [BASE_NAME]} base=${2:-}
	local i
	for i in "${!NODES[@]}"; do
		pidof_component "containerd-${NODES[$i]}" >/dev/null || die "the cluster is not running (hack/cluster.sh up)"
	done
	on_every_node load_image_node "$tar" "$base"
}

load_image_node() {
	local i=$1 tar=$2 base=$3
	if [ -n "$base" ]; then
		ctr "$i" images import --base-name "$base" "$tar"
	else
		ctr "$i" images import "$tar"
	fi
}

case "${1:-}" in
build) install_and_build ;;
up) up ;;
down) down ;;
status) status ;;
load-image) load_image "${@:2}" ;;
snapshot-controller) snapshot_controller "${@:2}" ;;
kubelet) kubelet_cmd "${@:2}" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
