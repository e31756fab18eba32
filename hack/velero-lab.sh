#!/usr/bin/env bash
# Velero in the lab: build Velero and its AWS plugin from the Go module proxy, make their images with
# our own image builder, and install Velero into the local test cluster (hack/cluster.sh) against the
# cluster's SeaweedFS, with its node-agent, CSI snapshots and snapshot data movement. Not part of
# `make test`: CI never builds Velero. See docs/velero.md, "Velero in the lab".
#
#   hack/velero-lab.sh build      velero, velero-restore-helper, velero-helper and the plugin, into .local/velero-lab/bin
#   hack/velero-lab.sh images     their OCI image tarballs, into .local/velero-lab/images
#   hack/velero-lab.sh up         build, images, load them into the running cluster, install Velero, wait until ready
#   hack/velero-lab.sh down [--keep-bucket]
#                                 remove every trace of Velero from the cluster (namespace, CRDs, cluster roles
#                                 and bindings, webhooks, the lab's view of the pods' directories) and its bucket
#   hack/velero-lab.sh check [--keep-bucket]
#                                 exit 1 if anything of Velero is left in the cluster or its bucket (what down
#                                 must leave)
#   hack/velero-lab.sh crash-down install Velero, stop its server and node-agent mid-work (a data mover backup
#                                 and restore under way, their finalizers set), then down and check
#   hack/velero-lab.sh e2e        make velero-e2e: real Velero backs up an app on two nodes (fs-backup, data
#                                 mover), is removed, and kubectl pvbackup velero restore brings it back
#                                 (TestVeleroLab); starts and stops the cluster if it is not running
#   hack/velero-lab.sh bench      make bench-velero: Velero vs kubectl pvbackup on the same data in the same
#                                 run (TestMeasureVelero); the same cluster handling
#   hack/velero-lab.sh tests RE   the velerolab e2e tests matching RE, one Velero install for all (the bench
#                                 first: TestVeleroLab removes Velero)
#   hack/velero-lab.sh fixtures   re-record testdata/velero/v1.18 from real Velero runs: start the cluster if
#                                 it is not running, install Velero, back up three small apps four ways,
#                                 copy the bucket's objects, then remove Velero and the apps (and stop the
#                                 cluster if this started it)
#
# The cluster must be up (hack/cluster.sh up) for up, down and check; take /work/locks/cluster around
# them on a shared machine. Builds run under nice: they take minutes on two cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/.local/velero-lab
SRC=$WORK/src
VBIN=$WORK/bin
IMAGES=$WORK/images
BIN=$ROOT/.local/bin

VELERO_VERSION=v1.18.3
AWS_PLUGIN_VERSION=v1.14.3
# Both modules pin k8s.io/* v0.33.12, which the module proxy does not serve; v0.33.13 (a patch release) is.
K8S_PINNED=v0.33.12
K8S_SERVED=v0.33.13
VELERO_IMAGE=localhost/pvbackup/velero:$VELERO_VERSION
AWS_PLUGIN_IMAGE=localhost/pvbackup/velero-plugin-for-aws:$AWS_PLUGIN_VERSION

NAMESPACE=velero
BUCKET=velero # a bucket of its own in the cluster's SeaweedFS, next to the plugin's own
BSL_PREFIX=lab
# Each lab node has a kubelet root of its own, /var/lib/pvbackup-cluster/<node>/kubelet (hack/cluster.sh),
# but Velero knows one kubelet root for every node: its node-agent DaemonSet mounts <root>/pods at
# /host_pods, and Velero 1.18's fs-backup hands the pod it starts on the volume's node the
# DaemonSet's host path of that pod's volume, <root>/pods/<pod uid>/volumes/... So the lab gives
# Velero one view of all nodes' pods: KUBELET_DIR/pods/<uid> is a directory per pod of any node whose
# volumes and volumeDevices are symbolic links to that node's own, kept by the pod-dirs Deployment
# (pod_dirs_manifest). The node-agent sees them as the directories it checks at start; its glob
# follows the links (the lab's state directory is mounted at the same path in its pods), and so
# do the container runtime for the fs-backup pod's host path.
LAB_STATE=/var/lib/pvbackup-cluster
KUBELET_DIR=$LAB_STATE/velero-kubelet
VELERO_GROUP=velero.io

log() { printf '>>> %s\n' "$*" >&2; }
die() {
	printf 'velero-lab: %s\n' "$*" >&2
	exit 1
}
kubectl() { "$BIN/kubectl" --kubeconfig "$ROOT/.local/cluster/kubeconfig" "$@"; }
velero() { "$VBIN/velero" --kubeconfig "$ROOT/.local/cluster/kubeconfig" --namespace "$NAMESPACE" "$@"; }

# ---------------------------------------------------------------- build

# prepare_module MODULE VERSION DIR copies MODULE@VERSION out of the (read-only) module cache into
# DIR and raises its k8s.io/* pins to what the proxy serves. Velero's go.mod replaces Kopia with
# Velero's fork, so it must be the main module: `go install pkg@version` refuses replace directives.
prepare_module() {
	local mod=$1 ver=$2 dir=$3 from
	[ -f "$dir/.prepared-$ver" ] && return 0
	log "downloading $mod@$ver"
	from=$(go mod download -json "$mod@$ver" | jq -r '.Dir // empty')
	[ -n "$from" ] || die "go mod download $mod@$ver failed"
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	cp -r "$from" "$dir"
	chmod -R u+w "$dir"
	sed -i -E "s#^(\s*(require\s+)?k8s\.io/[a-z0-9-]+) $K8S_PINNED(\s|\$)#\1 $K8S_SERVED\3#" "$dir/go.mod"
	(cd "$dir" && GOFLAGS=-mod=mod go mod tidy)
	touch "$dir/.prepared-$ver"
}

# go_build DIR OUT PKG [LDFLAGS] builds a static linux binary unless OUT is already there.
go_build() {
	local dir=$1 out=$2 pkg=$3 ldflags=${4:-} t0=$SECONDS
	[ -x "$out" ] && return 0
	log "building $(basename "$out") (nice; minutes on two cores)"
	(cd "$dir" && CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
	mv "$out.tmp" "$out"
	log "built $(basename "$out") in $((SECONDS - t0))s ($(du -h "$out" | cut -f1))"
}

build() {
	local v=$SRC/velero-$VELERO_VERSION p=$SRC/velero-plugin-for-aws-$AWS_PLUGIN_VERSION f built=1
	mkdir -p "$VBIN"
	for f in velero velero-restore-helper velero-helper velero-plugin-for-aws cp-plugin; do
		[ -x "$VBIN/$f" ] || built=
	done
	if [ -n "$built" ] && "$VBIN/velero" version --client-only | grep -q "Version: $VELERO_VERSION\$"; then
		return 0 # built before (the sources may be gone: they are only needed to build)
	fi
	prepare_module github.com/vmware-tanzu/velero "$VELERO_VERSION" "$v"
	prepare_module github.com/vmware-tanzu/velero-plugin-for-aws "$AWS_PLUGIN_VERSION" "$p"
	# As Velero's Dockerfile: the version makes the server's defaults (the restore helper image among
	# them) name this version.
	local ld="-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION -X github.com/vmware-tanzu/velero/pkg/buildinfo.GitTreeState=clean"
	go_build "$v" "$VBIN/velero" ./cmd/velero "$ld"
	go_build "$v" "$VBIN/velero-restore-helper" ./cmd/velero-restore-helper "$ld"
	go_build "$v" "$VBIN/velero-helper" ./cmd/velero-helper "$ld"
	go_build "$p" "$VBIN/velero-plugin-for-aws" ./velero-plugin-for-aws
	go_build "$p" "$VBIN/cp-plugin" ./hack/cp-plugin
}

# ---------------------------------------------------------------- images

# lab_tool runs hack/velero-lab (the image builder and the bucket helper).
lab_tool() { (cd "$ROOT" && go run ./hack/velero-lab "$@"); }

images() {
	build
	mkdir -p "$IMAGES"
	if [ ! -f "$IMAGES/velero.tar" ] || [ "$VBIN/velero" -nt "$IMAGES/velero.tar" ]; then
		log "image $VELERO_IMAGE"
		# Velero's Dockerfile puts the three programs at /; the server, the node-agent, the data
		# mover pods and the restore helper init container all run this one image.
		lab_tool image --ref "$VELERO_IMAGE" --title velero --out "$IMAGES/velero.tar" --entrypoint /velero \
			--file "$VBIN/velero=/velero" --file "$VBIN/velero-restore-helper=/velero-restore-helper" \
			--file "$VBIN/velero-helper=/velero-helper"
	fi
	if [ ! -f "$IMAGES/velero-plugin-for-aws.tar" ] || [ "$VBIN/velero-plugin-for-aws" -nt "$IMAGES/velero-plugin-for-aws.tar" ]; then
		log "image $AWS_PLUGIN_IMAGE"
		# As the plugin's Dockerfile: an init container that copies the plugin into Velero's /plugins.
		lab_tool image --ref "$AWS_PLUGIN_IMAGE" --title velero-plugin-for-aws --out "$IMAGES/velero-plugin-for-aws.tar" \
			--entrypoint "/bin/cp-plugin /plugins/velero-plugin-for-aws /target/velero-plugin-for-aws" \
			--file "$VBIN/velero-plugin-for-aws=/plugins/velero-plugin-for-aws" --file "$VBIN/cp-plugin=/bin/cp-plugin"
	fi
}

# ---------------------------------------------------------------- install

require_cluster() {
	"$ROOT/hack/cluster.sh" status >/dev/null 2>&1 || die "the lab cluster is not running: start it with hack/cluster.sh up (under flock /work/locks/cluster on a shared machine)"
	# shellcheck source=/dev/null
	. "$ROOT/.local/cluster/env"
	# The S3 store as pods reach it (the BackupStorageLocation) and as this machine does.
	: "${PVBACKUP_S3_ENDPOINT_IN_CLUSTER:?.local/cluster/env names no S3 endpoint}" "${PVBACKUP_S3_ENDPOINT:?}"
}

# bucket_url is the Velero bucket as a gocloud URL (for hack/velero-lab and kubectl pvbackup velero).
bucket_url() {
	echo "s3://$BUCKET/$BSL_PREFIX?endpoint=$PVBACKUP_S3_ENDPOINT&region=us-east-1&use_path_style=true&disable_https=true"
}

# manifests writes Velero's install manifests, as `velero install --dry-run -o json` makes them, with
# these changes for the lab: every imagePullPolicy Never (nothing can be pulled; the images were
# imported); the node-agent mounts the lab's state directory at the same path, so that the links
# of KUBELET_DIR/pods resolve in its pods as on the host; and its host-pods and host-plugins mounts
# propagate nothing: it only lists directories there (the fs-backup pods mount the volume itself,
# with Velero's HostToContainer, which KUBELET_DIR being a shared mount allows: see view_up).
manifests() {
	local out=$1 creds=$WORK/credentials-velero
	umask 077
	printf '[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$creds"
	velero install --dry-run -o json \
		--image "$VELERO_IMAGE" --plugins "$AWS_PLUGIN_IMAGE" \
		--provider aws --bucket "$BUCKET" --prefix "$BSL_PREFIX" --secret-file "$creds" \
		--backup-location-config "region=us-east-1,s3ForcePathStyle=true,s3Url=$PVBACKUP_S3_ENDPOINT_IN_CLUSTER" \
		--use-volume-snapshots=false --use-node-agent --uploader-type kopia --features EnableCSI \
		--kubelet-root-dir "$KUBELET_DIR" \
		--velero-pod-cpu-request 100m --velero-pod-mem-request 128Mi --velero-pod-cpu-limit 0 --velero-pod-mem-limit 1Gi \
		--node-agent-pod-cpu-request 100m --node-agent-pod-mem-request 128Mi --node-agent-pod-cpu-limit 0 --node-agent-pod-mem-limit 0 |
		jq --arg state "$LAB_STATE" '
			(.. | objects | select(has("imagePullPolicy"))).imagePullPolicy = "Never"
			| (.items[] | select(.kind == "DaemonSet" and .metadata.name == "node-agent") | .spec.template.spec) |= (
				.volumes += [{name: "lab-state", hostPath: {path: $state}}]
				| .containers[0].volumeMounts |= map(if .name == "host-pods" or .name == "host-plugins" then .mountPropagation = "None" else . end)
				| .containers[0].volumeMounts += [{name: "lab-state", mountPath: $state}])' \
		>"$out.tmp"
	jq -e --arg image "$VELERO_IMAGE" '[.. | objects | select(.image? == $image)] | length > 0' "$out.tmp" >/dev/null ||
		die "velero install did not use $VELERO_IMAGE"
	jq -e '[.items[] | select(.kind == "DaemonSet") | .spec.template.spec.volumes[] | select(.name == "lab-state")] | length == 1' "$out.tmp" >/dev/null ||
		die "the node-agent DaemonSet was not found in velero install's manifests"
	mv "$out.tmp" "$out"
}

# pod_dirs_manifest is the Deployment that keeps KUBELET_DIR/pods/<uid> for every pod of every
# node (see KUBELET_DIR): a directory holding links to the pod's volumes and volumeDevices in its
# node's kubelet root, made within a second of the kubelet making the pod's directory, removed when
# the pod's is. In Velero's namespace, so it goes with it.
pod_dirs_manifest() {
	local script
	# shellcheck disable=SC2016 # expanded by the pod's shell
	script='P=$VIEW/pods
mkdir -p "$P"
while :; do
  for src in "$STATE"/*/kubelet/pods/*; do
    [ -d "$src" ] || continue
    dst=$P/${src##*/}
    [ -d "$dst" ] && continue
    rm -rf "$dst.new" && mkdir "$dst.new" && ln -s "$src/volumes" "$dst.new/volumes" &&
      ln -s "$src/volumeDevices" "$dst.new/volumeDevices" && mv "$dst.new" "$dst"
  done
  for dst in "$P"/*; do
    [ -d "$dst" ] && [ ! -e "$dst/volumes" ] && rm -rf "$dst"
  done
  touch "$VIEW/synced"
  sleep 1
done'
	cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: pod-dirs, namespace: $NAMESPACE, labels: {app.kubernetes.io/part-of: velero-lab}}
spec:
  replicas: 1
  selector: {matchLabels: {app: pod-dirs}}
  template:
    metadata: {labels: {app: pod-dirs}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: pod-dirs
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        env: [{name: STATE, value: $LAB_STATE}, {name: VIEW, value: $KUBELET_DIR}]
        command: [sh, -c, $(jq -Rs . <<<"$script")]
        volumeMounts: [{name: state, mountPath: $LAB_STATE}]
      volumes: [{name: state, hostPath: {path: $LAB_STATE}}]
YAML
}

up() {
	require_cluster
	images
	log "loading the images into the lab's containerd"
	"$ROOT/hack/cluster.sh" load-image "$IMAGES/velero.tar" >/dev/null
	"$ROOT/hack/cluster.sh" load-image "$IMAGES/velero-plugin-for-aws.tar" >/dev/null
	lab_tool bucket create "$(bucket_url)"
	manifests "$WORK/install.json"
	log "the pods' directories of all nodes in one place for Velero ($KUBELET_DIR/pods)"
	view_up
	jq '.items[] | select(.kind == "Namespace")' "$WORK/install.json" | kubectl apply -f - >/dev/null
	pod_dirs_manifest | kubectl apply -f - >/dev/null
	kubectl -n "$NAMESPACE" rollout status deployment/pod-dirs --timeout 120s
	wait_file "$KUBELET_DIR/synced" 60
	log "installing Velero (manifests: $WORK/install.json)"
	# The CRDs must be established before the BackupStorageLocation can be created: apply twice.
	kubectl apply -f "$WORK/install.json" >/dev/null 2>&1 || true
	kubectl wait --for condition=established --timeout 60s crd -l component=velero >/dev/null
	kubectl apply -f "$WORK/install.json" >/dev/null
	kubectl -n "$NAMESPACE" rollout status deployment/velero --timeout 180s
	kubectl -n "$NAMESPACE" rollout status daemonset/node-agent --timeout 180s
	local i
	for i in $(seq 1 120); do
		[ "$(kubectl -n "$NAMESPACE" get backupstoragelocation default -o jsonpath='{.status.phase}' 2>/dev/null)" = Available ] && break
		[ "$i" = 120 ] && { kubectl -n "$NAMESPACE" logs deployment/velero --tail 30 >&2 || true; die "the BackupStorageLocation did not become Available"; }
		sleep 1
	done
	log "Velero $VELERO_VERSION is installed in namespace $NAMESPACE; its location is $(bucket_url)"
}

# view_up makes KUBELET_DIR a shared mount (a bind mount of itself): the container runtime mounts a
# host path with HostToContainer propagation (Velero's fs-backup pods mount the volume so) only from
# a shared or slave mount, and it looks at the path as given, KUBELET_DIR/pods/<uid>/volumes/...,
# before it follows the links into the node's kubelet root (a shared mount the kubelet made).
# hack/cluster.sh down unmounts it with everything else under its state directory.
view_up() {
	mkdir -p "$KUBELET_DIR/pods"
	rm -f "$KUBELET_DIR/synced"
	mountpoint -q "$KUBELET_DIR" || mount --bind "$KUBELET_DIR" "$KUBELET_DIR"
	mount --make-rshared "$KUBELET_DIR"
}

# view_down unmounts KUBELET_DIR (the pods that mounted it are gone) and removes it.
view_down() {
	if mountpoint -q "$KUBELET_DIR"; then
		umount -l "$KUBELET_DIR"
	fi
	rm -rf "$KUBELET_DIR"
}

# wait_file PATH SECONDS waits until PATH exists.
wait_file() {
	local i
	for i in $(seq 1 "$2"); do
		[ -e "$1" ] && return 0
		sleep 1
	done
	die "$1 did not appear within $2 s"
}

# ---------------------------------------------------------------- uninstall

# down removes everything Velero put in the cluster: what `velero install` created (all labelled
# component=velero), what Velero made while it ran (snapshots, claims and volumes of its data
# mover), the lab's view of the pods' directories, and its bucket (`down --keep-bucket` keeps the
# bucket: what a user has left when Velero is gone). As `velero uninstall` does, Velero's server and
# node-agent go first, then the finalizers nothing of Velero will remove any more, then the rest.
down() {
	local keep=
	[ "${1:-}" = --keep-bucket ] && keep=1
	require_cluster
	log "removing Velero from the lab"
	stop_controllers
	unfinalize
	kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null
	kubectl wait --for=delete namespace/"$NAMESPACE" --timeout 180s >/dev/null 2>&1 || true
	# Velero's snapshots of claims, in any namespace, their contents and the storage system's
	# snapshots: Velero sets a content Retain while it works (a crash left a 1 GiB one behind its
	# VolumeSnapshot), so each is made Delete before it goes.
	local vsc vscs
	vscs=$(velero_vscs)
	for vsc in $vscs; do
		log "deleting Velero's VolumeSnapshotContent $vsc and its snapshot"
		kubectl patch volumesnapshotcontent "$vsc" --type merge -p '{"spec":{"deletionPolicy":"Delete"}}' >/dev/null 2>&1 || true
	done
	kubectl delete volumesnapshots -A -l velero.io/backup-name --ignore-not-found --timeout 120s >/dev/null 2>&1 || true
	for vsc in $vscs; do
		kubectl delete volumesnapshotcontent "$vsc" --ignore-not-found --timeout 120s >/dev/null 2>&1 || true
	done
	local kind
	for kind in clusterrolebinding clusterrole mutatingwebhookconfiguration validatingwebhookconfiguration crd; do
		kubectl delete "$kind" -l component=velero --ignore-not-found --timeout 120s >/dev/null || true
	done
	# Volumes left by the data mover's claims in the velero namespace (reclaim policy Retain).
	local pv
	for pv in $(kubectl get pv -o jsonpath='{range .items[?(@.spec.claimRef.namespace=="'"$NAMESPACE"'")]}{.metadata.name}{"\n"}{end}'); do
		kubectl delete pv "$pv" --ignore-not-found --timeout 120s >/dev/null || true
	done
	view_down
	[ -n "$keep" ] || lab_tool bucket delete "$(bucket_url)"
	check ${keep:+--keep-bucket}
}

# stop_controllers deletes Velero's server and node-agent and waits until their pods are gone, so
# that nothing of Velero acts while the rest goes: a server outliving its namespace's deletion
# would delete a Restore's files from the bucket (--keep-bucket keeps it as Velero left it), and a
# node-agent would give a DataUpload it had not finished its finalizer back.
stop_controllers() {
	kubectl -n "$NAMESPACE" delete deployment/velero daemonset/node-agent --ignore-not-found \
		--cascade=foreground --timeout 120s >/dev/null 2>&1 || true
	kubectl -n "$NAMESPACE" wait --for=delete pod -l component=velero --timeout 120s >/dev/null 2>&1 || true
}

# unfinalize removes the finalizers left on Velero's objects once its controllers are gone: every
# object of a velero.io kind in any namespace (a Restore keeps one until Velero has deleted its
# files; a DataUpload, DataDownload, PodVolumeBackup or PodVolumeRestore Velero had not finished,
# its own), and Velero's own (velero.io/...) on VolumeSnapshots and VolumeSnapshotContents. Each
# would hold its namespace, its CustomResourceDefinition or its snapshot for ever: nothing of
# Velero will remove them any more (seen in a bench run whose bucket ran out of space).
unfinalize() {
	local crd ns name keep fin scope
	for crd in $(velero_kinds) volumesnapshots.snapshot.storage.k8s.io volumesnapshotcontents.snapshot.storage.k8s.io; do
		{ kubectl get "$crd" -A -o json 2>/dev/null || echo '{"items":[]}'; } |
			jq -r --arg group "$VELERO_GROUP" '.items[]
				| (if .apiVersion | startswith($group + "/") then .metadata.finalizers // []
				   else [.metadata.finalizers // [] | .[] | select(startswith($group + "/"))] end) as $drop
				| select($drop | length > 0)
				| [.metadata.namespace // "-", .metadata.name, ([.metadata.finalizers[] | select(IN($drop[]) | not)] | tojson), ($drop | join(","))]
				| @tsv' |
			while IFS=$'\t' read -r ns name keep fin; do
				scope=(-n "$ns")
				[ "$ns" = - ] && scope=() && ns=
				log "removing the finalizers $fin of $crd ${ns:+$ns/}$name (nothing of Velero will remove them)"
				kubectl "${scope[@]}" patch "$crd" "$name" --type merge -p '{"metadata":{"finalizers":'"$keep"'}}' >/dev/null || true # gone meanwhile
			done
	done
}

# velero_vscs lists Velero's VolumeSnapshotContents: labelled velero.io/backup-name, or bound to a
# VolumeSnapshot of Velero's namespace (its data mover's) or named velero-<claim>-... (its CSI
# plugin's, in the claim's namespace). The snapshot controller names a content after its
# VolumeSnapshot's UID and Velero labels none, so the snapshot it was made for is what tells.
velero_vscs() {
	{ kubectl get volumesnapshotcontents -o json 2>/dev/null || echo '{"items":[]}'; } |
		jq -r --arg ns "$NAMESPACE" '.items[]
			| select(.metadata.labels["velero.io/backup-name"] != null or .spec.volumeSnapshotRef.namespace == $ns
				or (.spec.volumeSnapshotRef.name // "" | startswith("velero-")))
			| .metadata.name'
}

# check fails if anything of Velero is left in the cluster, or its bucket (not with --keep-bucket).
check() {
	require_cluster
	local left=() kind out
	kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 && left+=("namespace $NAMESPACE")
	for kind in crd clusterrolebinding clusterrole mutatingwebhookconfiguration validatingwebhookconfiguration; do
		out=$(kubectl get "$kind" -l component=velero -o name 2>/dev/null)
		[ -n "$out" ] && left+=("$out")
	done
	out=$(kubectl get crd -o name | grep "\.$VELERO_GROUP\$" || true)
	[ -n "$out" ] && left+=("$out")
	out=$(kubectl get clusterrole,clusterrolebinding,mutatingwebhookconfiguration,validatingwebhookconfiguration,apiservice -o name | grep -i velero || true)
	[ -n "$out" ] && left+=("$out")
	out=$(kubectl get volumesnapshots -A -l velero.io/backup-name -o name 2>/dev/null || true)
	[ -n "$out" ] && left+=("$out")
	out=$(velero_vscs)
	[ -n "$out" ] && left+=("volumesnapshotcontents $out")
	out=$(kubectl get pv -o jsonpath='{range .items[?(@.spec.claimRef.namespace=="'"$NAMESPACE"'")]}{.metadata.name}{"\n"}{end}')
	[ -n "$out" ] && left+=("persistentvolumes $out")
	[ -e "$KUBELET_DIR" ] && left+=("$KUBELET_DIR")
	if [ "${1:-}" != --keep-bucket ] && ! out=$(lab_tool bucket check "$(bucket_url)" 2>&1); then
		left+=("$out")
	fi
	if [ ${#left[@]} -gt 0 ]; then
		printf 'left behind: %s\n' "${left[@]}" >&2
		return 1
	fi
	log "nothing of Velero is left in the cluster${1:+ (its bucket kept)}"
}

# diagnose keeps what Velero said, for a failed run: the server's and node-agent's logs, the
# backups' descriptions and logs, in .local/velero-lab/logs (the namespace goes with down).
diagnose() {
	local d=$WORK/logs b
	mkdir -p "$d"
	kubectl -n "$NAMESPACE" logs deployment/velero --all-containers >"$d/velero.log" 2>&1
	kubectl -n "$NAMESPACE" logs daemonset/node-agent >"$d/node-agent.log" 2>&1
	kubectl get pods -A -o wide >"$d/pods.txt" 2>&1
	kubectl -n "$NAMESPACE" get events --sort-by .lastTimestamp >"$d/events.txt" 2>&1
	for b in $(kubectl -n "$NAMESPACE" get backups -o name 2>/dev/null); do
		velero backup describe "${b#*/}" --details >"$d/${b#*/}.describe.txt" 2>&1
		velero backup logs "${b#*/}" >"$d/${b#*/}.log" 2>&1
	done
	log "Velero's logs and the backups' descriptions are in $d"
}

# ---------------------------------------------------------------- fixtures

FIXTURES=$ROOT/testdata/velero/v1.18/bucket
APP_NAMESPACES=(vl-res vl-fs vl-dm)

# The data of each volume: three small files whose content the tests know ($NS is the pod's).
# shellcheck disable=SC2016 # expanded by the pod's shell
WRITE_DATA='if [ ! -f /data/hello.txt ]; then
  mkdir -p /data/dir/sub
  echo "hello from $NS" >/data/hello.txt
  seq 1 100 | sed "s/^/line /" >/data/dir/a.txt
  head -c 4096 /dev/zero | tr "\0" b >/data/dir/sub/b.bin
  sync
fi
exec sleep 86400'

# apps creates the three namespaces the fixtures back up: vl-res (no volume), vl-fs (a
# Deployment with a claim) and vl-dm (a StatefulSet with a claim template).
apps() {
	local script
	script=$(printf '%s' "$WRITE_DATA" | sed 's/^/          /')
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: vl-res}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: vl-res}
data: {greeting: hello, mode: lab}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, namespace: vl-res}
stringData: {token: not-a-real-token}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: vl-res}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: vl-res}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        command: [sleep, "86400"]
---
apiVersion: v1
kind: Namespace
metadata: {name: vl-fs}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: vl-fs}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: csi-dir
  resources: {requests: {storage: 16Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: files, namespace: vl-fs}
spec:
  replicas: 1
  selector: {matchLabels: {app: files}}
  template:
    metadata: {labels: {app: files}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: files
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        env: [{name: NS, value: vl-fs}]
        command:
        - sh
        - -c
        - |
$script
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
---
apiVersion: v1
kind: Namespace
metadata: {name: vl-dm}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: vl-dm}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: vl-dm}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        env: [{name: NS, value: vl-dm}]
        command:
        - sh
        - -c
        - |
$script
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: csi-dir
      resources: {requests: {storage: 16Mi}}
YAML
	kubectl -n vl-res rollout status deployment/web --timeout 120s
	kubectl -n vl-fs rollout status deployment/files --timeout 120s
	kubectl -n vl-dm rollout status statefulset/db --timeout 120s
	local ns pod i
	for ns in vl-fs vl-dm; do
		pod=$(kubectl -n "$ns" get pod -o name | head -1)
		for i in $(seq 1 60); do
			kubectl -n "$ns" exec "$pod" -- test -f /data/dir/sub/b.bin && break
			[ "$i" = 60 ] && die "$ns/$pod did not write its data"
			sleep 1
		done
	done
}

# backup NAME ARGS... runs `velero backup create NAME ARGS... --wait` and says how it ended.
backup() {
	local name=$1 t0=$SECONDS
	shift
	velero backup create "$name" "$@" --wait >/dev/null
	log "backup $name: $(kubectl -n "$NAMESPACE" get backup "$name" -o jsonpath='{.status.phase}') in $((SECONDS - t0))s"
}

# partial is a backup of vl-fs whose pre hook fails with onError Continue: Velero backs the volume
# up and ends the backup PartiallyFailed.
partial() {
	local t0=$SECONDS phase i
	kubectl apply -f - >/dev/null <<YAML
apiVersion: velero.io/v1
kind: Backup
metadata: {name: partial, namespace: $NAMESPACE}
spec:
  includedNamespaces: [vl-fs]
  defaultVolumesToFsBackup: true
  storageLocation: default
  ttl: 720h0m0s
  hooks:
    resources:
    - name: fails-on-purpose
      includedNamespaces: [vl-fs]
      labelSelector: {matchLabels: {app: files}}
      pre:
      - exec:
          container: files
          command: [/bin/sh, -c, "echo this hook fails on purpose >&2; exit 3"]
          onError: Continue
          timeout: 30s
YAML
	for i in $(seq 1 300); do
		phase=$(kubectl -n "$NAMESPACE" get backup partial -o jsonpath='{.status.phase}')
		case "$phase" in Completed | PartiallyFailed | Failed) break ;; esac
		sleep 1
	done
	log "backup partial: $phase in $((SECONDS - t0))s"
}

fixtures() {
	local started=
	if ! "$ROOT/hack/cluster.sh" status >/dev/null 2>&1; then
		started=1
		"$ROOT/hack/cluster.sh" up
	fi
	# shellcheck disable=SC2064 # the value now
	trap "fixtures_cleanup '$started'" EXIT
	up
	apps
	backup resources-only --include-namespaces vl-res --snapshot-volumes=false
	backup fs-deploy --include-namespaces vl-fs --default-volumes-to-fs-backup
	backup datamover-sts --include-namespaces vl-dm --snapshot-move-data
	partial
	velero backup get
	local w got
	for w in resources-only=Completed fs-deploy=Completed datamover-sts=Completed partial=PartiallyFailed; do
		got=$(kubectl -n "$NAMESPACE" get backup "${w%=*}" -o jsonpath='{.status.phase}')
		[ "$got" = "${w#*=}" ] || die "backup ${w%=*} is $got, not ${w#*=}: see velero backup describe ${w%=*} --details"
	done
	lab_tool export "$(bucket_url)" "$FIXTURES" --backup resources-only --backup fs-deploy --backup datamover-sts \
		--backup partial --repo vl-fs --repo vl-dm
	du -sh "$FIXTURES" >&2
}

fixtures_cleanup() {
	local rc=$? started=$1
	set +e
	trap - EXIT
	[ "$rc" = 0 ] || diagnose
	kubectl delete namespace "${APP_NAMESPACES[@]}" --ignore-not-found --wait --timeout 120s >/dev/null
	down || rc=1
	if [ -n "$started" ]; then
		"$ROOT/hack/cluster.sh" down || rc=1
	fi
	exit $rc
}

# ---------------------------------------------------------------- down after a crash

STRAND_NS=vl-strand

# strand leaves Velero as a crash mid-work would: a data mover backup and a data mover restore
# under way (their DataUpload and DataDownload carrying Velero's finalizer, the Restore its own)
# when Velero's server and node-agent disappear. What down must then clear.
strand() {
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $STRAND_NS}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: $STRAND_NS}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: csi-dir
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: $STRAND_NS}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: $PVBACKUP_TEST_IMAGE
    imagePullPolicy: Never
    command: [sh, -c, 'head -c 268435456 /dev/urandom >/data/big && sync && touch /data/done && exec sleep 86400']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
YAML
	local i
	for i in $(seq 1 180); do
		kubectl -n "$STRAND_NS" exec app -- test -f /data/done 2>/dev/null && break
		[ "$i" = 180 ] && die "$STRAND_NS/app did not write its data"
		sleep 1
	done
	backup strand-src --include-namespaces "$STRAND_NS" --snapshot-move-data
	velero restore create strand-restore --from-backup strand-src --namespace-mappings "$STRAND_NS:$STRAND_NS-to" >/dev/null
	velero backup create strand-backup --include-namespaces "$STRAND_NS" --snapshot-move-data >/dev/null
	wait_finalizer datadownloads velero.io/restore-name=strand-restore
	wait_finalizer datauploads velero.io/backup-name=strand-backup
	log "stopping Velero's server and node-agent mid-work, as a crash would"
	stop_controllers
	kubectl get "$(velero_kinds | paste -sd, -)" -A \
		-o jsonpath='{range .items[?(@.metadata.finalizers)]}{.kind} {.metadata.namespace}/{.metadata.name} {.status.phase}: {.metadata.finalizers}{"\n"}{end}' >&2
}

# wait_finalizer RESOURCE SELECTOR waits until an object of Velero's RESOURCE matching SELECTOR
# carries Velero's finalizer (it is under way).
wait_finalizer() {
	local i
	for i in $(seq 1 600); do
		kubectl -n "$NAMESPACE" get "$1" -l "$2" -o jsonpath='{.items[*].metadata.finalizers}' | grep -q velero.io/ && return 0
		sleep 0.2
	done
	die "no $1 ($2) under way within 120 s"
}

# velero_kinds lists the CustomResourceDefinitions of Velero's kinds.
velero_kinds() {
	kubectl get crd -o jsonpath='{range .items[?(@.spec.group=="'"$VELERO_GROUP"'")]}{.metadata.name}{"\n"}{end}'
}

# crash_down proves down after a crash: install Velero, strand it, then down and its check; the
# app's namespaces go after. The cluster must be up.
crash_down() {
	require_cluster
	trap crash_down_cleanup EXIT
	up
	strand
	down
}

crash_down_cleanup() {
	local rc=$?
	set +e
	trap - EXIT
	if [ "$rc" != 0 ]; then
		diagnose
		down
	fi
	kubectl delete namespace "$STRAND_NS" "$STRAND_NS-to" --ignore-not-found --timeout 120s >/dev/null
	exit $rc
}

# ---------------------------------------------------------------- tests and bench

# lab_tests REGEX runs the end-to-end tests of real Velero (test/e2e, build tags e2e and velerolab)
# whose names match REGEX: it starts the cluster if it is not running, loads the mover image built
# from this checkout, installs Velero, runs them, then removes Velero and its bucket (and stops the
# cluster if this started it). Velero's and the tests' own outcome decide the exit code.
lab_tests() {
	local run=$1 started=
	export PVBACKUP_MOVER_IMAGE=${PVBACKUP_MOVER_IMAGE:-localhost/pvbackup/mover:e2e}
	(cd "$ROOT" && make image MOVER_IMAGE="$PVBACKUP_MOVER_IMAGE" IMAGE_TAR=.local/images/pvbackup-mover-e2e.tar >/dev/null)
	if ! "$ROOT/hack/cluster.sh" status >/dev/null 2>&1; then
		started=1
		"$ROOT/hack/cluster.sh" up
	fi
	# shellcheck disable=SC2064 # the value now
	trap "lab_tests_cleanup '$started'" EXIT
	"$ROOT/hack/cluster.sh" load-image "$ROOT/.local/images/pvbackup-mover-e2e.tar" >/dev/null
	up
	VELERO_LAB_VELERO=$VBIN/velero VELERO_LAB_URL=$(bucket_url)
	export VELERO_LAB_VELERO VELERO_LAB_URL
	log "go test -tags 'e2e velerolab' -run '$run' ./test/e2e/ (the whole output: $WORK/tests.log)"
	{
		(cd "$ROOT" && go test -count=1 -tags 'e2e velerolab' -run "$run" -v -timeout 60m ./test/e2e/) 2>&1
		echo "exit $?"
	} | tee "$WORK/tests.log" | grep --line-buffered -E 'MEASURE|velero_(lab|bench)_test|^\s*--- |^(=== RUN|ok|FAIL|PASS|exit )' || true
	[ "$(tail -1 "$WORK/tests.log")" = "exit 0" ]
}

lab_tests_cleanup() {
	local rc=$? started=$1
	set +e
	trap - EXIT
	[ "$rc" = 0 ] || diagnose
	down || rc=1
	if [ -n "$started" ]; then
		"$ROOT/hack/cluster.sh" down || rc=1
	fi
	exit $rc
}

case "${1:-}" in
build) build ;;
images) images ;;
up) up ;;
down) down "${2:-}" ;;
check) check "${2:-}" ;;
fixtures) fixtures ;;
e2e) lab_tests '^TestVeleroLab$' ;;
bench) lab_tests '^TestMeasureVelero$' ;;
crash-down) crash_down ;;
tests) lab_tests "${2:?usage: hack/velero-lab.sh tests REGEX}" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
