#!/usr/bin/env bash
# A real single-node Kubernetes cluster with CSI snapshots and an S3 store, all as host processes
# (no docker, no systemd), for the end-to-end tests and the demo; the lab's registries are in
# hack/lab-registry.sh. Needs root.
#
#   hack/cluster.sh up                 install and build what is missing, start everything, wait until ready,
#                                      write .local/cluster/kubeconfig and .local/cluster/env
#   hack/cluster.sh down               stop every process by PID, kill pod tasks, unmount, remove all state
#   hack/cluster.sh status             which components run; exit 1 unless all do
#   hack/cluster.sh load-image TAR [BASE_NAME]
#                                      import an image tarball (docker-archive or OCI) into the cluster;
#                                      BASE_NAME names the images of an OCI archive that holds tags only.
#                                      Tarballs in .local/images/ are imported by every `up`.
#   hack/cluster.sh snapshot-controller stop|start
#                                      stop or start the snapshot controller alone (doctor's e2e test)
#
# Layout: binaries in .local/bin, logs in .local/cluster/logs (kept after down), runtime state in
# /var/lib/pvbackup-cluster and /run/pvbackup-cluster (removed by down). Network: everything listens on
# 127.0.0.1 or on 10.244.0.1, the gateway of the cni0 bridge (pods 10.244.0.0/24, services 10.244.240.0/20);
# traffic from pods is confined to the bridge and the host. Versions and settings: docs/local-cluster.md.
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

NODE=pvbackup-node
GATEWAY=10.244.0.1
POD_CIDR=10.244.0.0/24
HARNESS_CIDR=10.244.0.0/16
SERVICE_CIDR=10.244.240.0/20
KUBERNETES_SVC_IP=10.244.240.1
BRIDGE=cni0
BRIDGE_MAC=0a:58:0a:f4:00:01 # locally administered, from the gateway address (as the CNI bridge plugin once did)
APISERVER=https://$GATEWAY:6443
ETCD_CLIENT=http://127.0.0.1:12379
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
CSI_DRIVER=dir.csi.pvbackup.io
KUBELET_DIR=$STATE/kubelet
CSI_SOCK=$KUBELET_DIR/plugins/$CSI_DRIVER/csi.sock
S3_PORT=8333
S3_BUCKET=pvbackup
S3_ACCESS_KEY=pvbackup
S3_SECRET_KEY=pvbackup-local-secret
PAUSE_IMAGE=localhost/pvbackup/pause:3.10
TEST_IMAGE=localhost/pvbackup/busybox:1.35
ISOLATE_CHAIN=PVBACKUP-ISOLATE
# shellcheck source=hack/lab-registry.sh
. "$ROOT/hack/lab-registry.sh"

# Start order; down stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy
	snapshot-controller pvbackup-csi csi-provisioner csi-snapshotter seaweedfs lab-registry)

log() { printf '>>> %s\n' "$*" >&2; }
die() {
	printf 'cluster: %s\n' "$*" >&2
	exit 1
}
kubectl() { "$BIN/kubectl" --kubeconfig "$OUT/kubeconfig" "$@"; }
ctr() { /usr/bin/ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

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
	setsid "$exe" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
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

# pod_pids lists the processes in the kubelet's pod cgroups: every container, pause included.
pod_pids() {
	local f
	for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		if [ -d "$f" ]; then find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
	done | sort -un
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
	cert kubelet "system:node:$NODE" system:nodes "IP:$GATEWAY,DNS:$NODE"
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
	mkdir -p "$STATE/conf" "$STATE/cni/net.d" "$RUN/containerd"
	local c
	for c in admin controller-manager scheduler kubelet kube-proxy; do
		kubeconfig "$STATE/conf/$c.kubeconfig" "$c"
	done

	cat >"$STATE/conf/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
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
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  # lab registry: pulls from the registries on the gateway go over plain HTTP (hack/lab-registry.sh)
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/conf/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd-opt"
EOF

	registry_config "$STATE/conf/certs.d" # lab registry

	cat >"$STATE/cni/net.d/10-pvbackup.conflist" <<EOF
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
      "dataDir": "$STATE/cni/ipam",
      "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF

	: >"$STATE/conf/resolv.conf" # no DNS server: pods use IP addresses, nothing leaves the machine
	cat >"$STATE/conf/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $GATEWAY
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
clusterDomain: cluster.local
resolvConf: $STATE/conf/resolv.conf
podLogsDir: $STATE/pod-logs
# A small or busy disk must not evict the test pods or collect the imported (unpullable) images.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
syncFrequency: 10s
fileCheckFrequency: 10s
EOF

	cat >"$STATE/conf/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/conf/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $GATEWAY
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
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
	ip addr replace "$GATEWAY/24" dev "$BRIDGE"
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

start_control_plane() {
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

import_images() {
	local f
	for f in "$IMAGES"/*.tar; do
		[ -f "$f" ] || continue
		ctr images import "$f" >/dev/null || die "import $f into containerd failed"
	done
}

start_node() {
	start containerd /usr/bin/containerd --config "$STATE/conf/containerd.toml"
	wait_until "containerd" 60 /usr/bin/ctr --address "$CONTAINERD_SOCK" version
	import_images
	ctr images ls -q | grep -x "$PAUSE_IMAGE" >/dev/null || die "the pause image $PAUSE_IMAGE is missing after import"

	mkdir -p "$KUBELET_DIR"
	start kubelet "$BIN/kubelet" --config "$STATE/conf/kubelet.yaml" \
		--kubeconfig "$STATE/conf/kubelet.kubeconfig" --root-dir "$KUBELET_DIR" \
		--hostname-override "$NODE" --node-ip "$GATEWAY" --v=1
	start kube-proxy "$BIN/kube-proxy" --config "$STATE/conf/kube-proxy.yaml" --v=1
}

start_storage() {
	kubectl apply --server-side -f "$ROOT/.local/cluster-crds/" >/dev/null
	wait_until "snapshot CRDs" 60 kubectl wait --for condition=established --timeout=1s \
		crd/volumesnapshots.snapshot.storage.k8s.io crd/volumesnapshotcontents.snapshot.storage.k8s.io \
		crd/volumesnapshotclasses.snapshot.storage.k8s.io
	kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $CSI_DRIVER}
spec:
  attachRequired: false
  podInfoOnMount: false
  fsGroupPolicy: File
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-dir
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: $CSI_DRIVER
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-dir-wffc}
provisioner: $CSI_DRIVER
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-dir
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: $CSI_DRIVER
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-dir-slow}
driver: $CSI_DRIVER
deletionPolicy: Delete
parameters: {readyDelay: "20s"}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-dir-fail}
driver: $CSI_DRIVER
deletionPolicy: Delete
parameters: {fail: "this VolumeSnapshotClass (csi-dir-fail) makes every snapshot fail, for tests"}
EOF

	local admin=$STATE/conf/admin.kubeconfig
	start_snapshot_controller
	start pvbackup-csi "$BIN/pvbackup-csi" --drivername "$CSI_DRIVER" --nodeid "$NODE" \
		--endpoint "$CSI_SOCK" --datadir "$STATE/csi" --capacity 50Gi \
		--kubelet-registration-dir "$KUBELET_DIR/plugins_registry"
	wait_until "the CSI driver socket" 30 test -S "$CSI_SOCK"
	start csi-provisioner "$BIN/csi-provisioner" --kubeconfig "$admin" --csi-address "$CSI_SOCK" \
		--leader-election=false --timeout 60s --v=2
	start csi-snapshotter "$BIN/csi-snapshotter" --kubeconfig "$admin" --csi-address "$CSI_SOCK" \
		--leader-election=false --timeout 60s --v=2

	mkdir -p "$STATE/seaweedfs"
	export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
	start seaweedfs "$BIN/weed" mini -dir="$STATE/seaweedfs" -ip="$GATEWAY" -ip.bind="$GATEWAY" \
		-bucket="$S3_BUCKET" -admin.ui=false -master.telemetry=false -webdav=false \
		-s3.port.iceberg=0 -s3.port.lance=0 -admin.port=12537 -admin.port.legacy=0
	registry_start # lab registry
}

# The snapshot controller runs with leader election: its Lease (kube-system/snapshot-controller-leader,
# renewed every 5 s) is how a client such as `kubectl pvbackup doctor` sees that a controller running
# outside the cluster's pods is alive. ReleaseLeaderElectionOnExit makes a stopped controller give the
# Lease up at once (instead of letting it expire 15 s later), so doctor's e2e test of a stopped
# controller keeps the cluster without one for seconds; a restarted controller takes it back at once.
start_snapshot_controller() {
	start snapshot-controller "$BIN/snapshot-controller" --kubeconfig "$STATE/conf/admin.kubeconfig" \
		--leader-election=true --leader-election-namespace=kube-system \
		--feature-gates=ReleaseLeaderElectionOnExit=true --v=2
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

s3_bucket_ok() {
	curl -sf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		"http://$GATEWAY:$S3_PORT/$S3_BUCKET?list-type=2&max-keys=1"
}

node_ready() {
	[ "$(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

csi_registered() {
	kubectl get csinode "$NODE" -o jsonpath='{.spec.drivers[*].name}' | grep -w "$CSI_DRIVER" >/dev/null
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
		import_images
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
	start_control_plane
	start_node
	write_outputs
	wait_until "node $NODE to register" 120 kubectl get node "$NODE"
	start_storage
	wait_until "node $NODE Ready" 120 node_ready
	wait_until "ServiceAccount default/default" 60 kubectl get serviceaccount default -n default
	wait_until "the CSI driver's registration with the kubelet" 60 csi_registered
	wait_until "SeaweedFS S3 with bucket $S3_BUCKET" 120 s3_bucket_ok
	wait_until "default StorageClass and VolumeSnapshotClass" 30 kubectl get storageclass/csi-dir volumesnapshotclass/csi-dir
	check_alive
	CLUSTER_UP_DONE=1
	trap - EXIT
	log "cluster up in $((SECONDS - t0))s: source $OUT/env"
}

down() {
	local i pid
	# The node side first, so no new pods start while the rest goes.
	stop_components lab-registry seaweedfs csi-snapshotter csi-provisioner pvbackup-csi snapshot-controller kube-proxy kubelet
	# Pod containers (pause included) by PID, then containerd, then the shims it leaves behind.
	for i in $(seq 1 50); do
		pid=$(pod_pids)
		[ -z "$pid" ] && break
		kill -KILL $pid 2>/dev/null || true
		sleep 0.1
	done
	stop_components containerd
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	stop_components kube-scheduler kube-controller-manager kube-apiserver
	stop_components etcd
	if [ -x "$BIN/kube-proxy" ]; then
		"$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	iptables_cleanup
	# Mounts: pod volumes, container root filesystems, shm, network namespaces; deepest first.
	local m
	for _ in 1 2 3; do
		m=$(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)|^/run/netns/cni-|^/var/run/netns/cni-" | sort -r || true)
		[ -z "$m" ] && break
		while read -r i; do umount -l "$i" 2>/dev/null || true; done <<<"$m"
	done
	for i in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$i" 2>/dev/null || true; done
	network_down
	for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -rf "$STATE" "$RUN"
	rm -f "$OUT/kubeconfig" "$OUT/env"
	local left
	left=$(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" || true)
	[ -z "$left" ] || die "mounts left behind: $left"
	# Every process of the cluster names its state directories on its command line.
	left=$(pgrep -af -- "$STATE|$RUN" | grep -v "^$$ " || true)
	[ -z "$left" ] || die "processes left behind: $left"
	log "cluster down"
}

status() {
	local c pid rc=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pidof_component "$c"); then
			printf '%-24s running (pid %s)\n' "$c" "$pid"
		else
			printf '%-24s stopped\n' "$c"
			rc=1
		fi
	done
	# 3 = NET_ADDR_SET: a bridge started by an older version of this script changes its MAC with
	# the pods' veths (see network_up).
	if [ -e "/sys/class/net/$BRIDGE" ] && [ "$(cat "/sys/class/net/$BRIDGE/addr_assign_type")" != 3 ]; then
		# A warning, not a failure: hack/e2e.sh starts a cluster when status fails.
		printf '%-24s warning: MAC not fixed, pods may stall for ~30 s when another pod goes (fix: ip link set dev %s address %s)\n' "$BRIDGE" "$BRIDGE" "$BRIDGE_MAC" >&2
	fi
	return $rc
}

load_image() {
	local tar=${1:?usage: hack/cluster.sh load-image TARBALL [BASE_NAME]} base=${2:-}
	pidof_component containerd >/dev/null || die "the cluster is not running (hack/cluster.sh up)"
	if [ -n "$base" ]; then
		ctr images import --base-name "$base" "$tar"
	else
		ctr images import "$tar"
	fi
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
load-image) load_image "${@:2}" ;;
snapshot-controller) snapshot_controller "${@:2}" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
