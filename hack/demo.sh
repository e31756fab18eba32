#!/usr/bin/env bash
# make demo: back up a sample app with its data using the real plugin, delete it, restore it, verify.
#
#   1. start the local cluster (hack/cluster.sh up) and source .local/cluster/env
#   2. deploy namespace pvbackup-demo: a ConfigMap, a Secret, a PVC, a Deployment that mounts it,
#      and a Job that seeds the PVC with files and their SHA256SUMS
#   3. bin/kubectl-pvbackup create NAME --to $PVBACKUP_LOCATION --include-namespaces pvbackup-demo
#   4. delete the namespace
#   5. bin/kubectl-pvbackup restore NAME --from $PVBACKUP_LOCATION
#   6. verify the ConfigMap, Secret and Deployment are back, and check the files against SHA256SUMS
#
# Environment: PVBACKUP_PASSWORD (default: a demo password, printed), PVBACKUP_LOCATION (default: the
# cluster's S3 bucket under the prefix demo/<backup>/). The mover image is built from this checkout and loaded
# into the cluster (no registry is needed). Missing or wrong volume data fails the demo.
# Every line printed comes from the real commands; nothing is simulated.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NS=pvbackup-demo
PLUGIN=$ROOT/bin/kubectl-pvbackup

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
	printf '\n\033[31mdemo failed: %s\033[0m\n' "$*" >&2
	exit 1
}

[ -x "$PLUGIN" ] || fail "$PLUGIN is missing: run make demo (it builds the plugin first)"

step "cluster up"
hack/cluster.sh up
# The image of the mover Jobs that move the volume data, built from this checkout.
MOVER_IMAGE=localhost/pvbackup/mover:demo
step "mover image $MOVER_IMAGE"
make --no-print-directory image MOVER_IMAGE="$MOVER_IMAGE" IMAGE_TAR=.local/images/pvbackup-mover-demo.tar
hack/cluster.sh load-image .local/images/pvbackup-mover-demo.tar >/dev/null
MOVER=(--mover-image "$MOVER_IMAGE" --mover-pull-policy Never)
# shellcheck source=/dev/null
. .local/cluster/env
kubectl() { "$PVBACKUP_KUBECTL" "$@"; }

if [ -z "${PVBACKUP_PASSWORD:-}" ]; then
	PVBACKUP_PASSWORD=demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	echo "PVBACKUP_PASSWORD not set: using a generated demo password ($PVBACKUP_PASSWORD)"
fi
export PVBACKUP_PASSWORD
BACKUP=demo-$(date -u +%Y%m%d-%H%M%S)
if [ -z "${PVBACKUP_LOCATION:-}" ]; then
	# A prefix per run: each run makes its own password, and a repository keeps the one it was made with.
	PVBACKUP_LOCATION="s3://$PVBACKUP_S3_BUCKET/demo/$BACKUP?endpoint=$PVBACKUP_S3_ENDPOINT&region=us-east-1&use_path_style=true&disable_https=true"
fi
export PVBACKUP_LOCATION

step "deploy the sample app in namespace $NS"
kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: $NS}
data: {greeting: "hello from the pvbackup demo"}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, namespace: $NS}
stringData: {token: "s3cr3t-demo-token"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: app-data, namespace: $NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 256Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed, namespace: $NS}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: seed
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /data/files && for i in 1 2 3 4 5 6 7 8; do head -c \$((i * 65536)) /dev/urandom > /data/files/blob-\$i.bin; done && echo "orders: 42" > /data/files/orders.txt && cd /data && sha256sum files/* > SHA256SUMS && cat SHA256SUMS']
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: app-data}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers:
      - name: app
        image: $PVBACKUP_TEST_IMAGE
        imagePullPolicy: Never
        command: [sh, -c, 'cat /config/greeting; echo; ls -l /data/files; exec sleep 2147483647']
        volumeMounts:
        - {name: data, mountPath: /data}
        - {name: config, mountPath: /config}
      volumes:
      - {name: data, persistentVolumeClaim: {claimName: app-data}}
      - {name: config, configMap: {name: app-config}}
EOF
kubectl -n "$NS" wait --for=condition=complete job/seed --timeout=120s ||
	{ kubectl -n "$NS" describe job/seed; kubectl -n "$NS" logs job/seed; fail "the seed job did not complete"; }
echo "seeded files and their checksums:"
kubectl -n "$NS" logs job/seed | sed 's/^/  /'
SUMS=$(kubectl -n "$NS" logs job/seed)
kubectl -n "$NS" rollout status deployment/app --timeout=120s
kubectl -n "$NS" delete job seed --wait=true >/dev/null # a finished Job is not part of the app
kubectl -n "$NS" get all,pvc,configmap,secret

step "kubectl pvbackup create $BACKUP --to \$PVBACKUP_LOCATION --include-namespaces $NS --mover-image $MOVER_IMAGE"
"$PLUGIN" create "$BACKUP" --to "$PVBACKUP_LOCATION" --include-namespaces "$NS" "${MOVER[@]}"

step "delete namespace $NS (the disaster)"
kubectl delete namespace "$NS" --wait=true --timeout=180s
kubectl get namespace "$NS" >/dev/null 2>&1 && fail "namespace $NS still exists"
echo "namespace $NS is gone"

step "kubectl pvbackup restore $BACKUP --from \$PVBACKUP_LOCATION --mover-image $MOVER_IMAGE"
"$PLUGIN" restore "$BACKUP" --from "$PVBACKUP_LOCATION" "${MOVER[@]}"

step "verify"
ok=1
check() { # check DESCRIPTION COMMAND...
	if "${@:2}"; then echo "  ✓ $1"; else
		echo "  ✗ $1"
		ok=
	fi
}
check "ConfigMap app-config has its data" \
	test "$(kubectl -n "$NS" get configmap app-config -o jsonpath='{.data.greeting}' 2>/dev/null)" = "hello from the pvbackup demo"
check "Secret app-secret has its data" \
	test "$(kubectl -n "$NS" get secret app-secret -o jsonpath='{.data.token}' 2>/dev/null | base64 -d)" = "s3cr3t-demo-token"
check "PVC app-data exists" kubectl -n "$NS" get pvc app-data -o name >/dev/null
check "Deployment app rolls out" kubectl -n "$NS" rollout status deployment/app --timeout=180s
kubectl -n "$NS" get all,pvc,configmap,secret || true

data_ok=
if kubectl -n "$NS" get pvc app-data >/dev/null 2>&1; then
	pod=$(kubectl -n "$NS" get pod -l app=demo -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
	if [ -n "$pod" ] && out=$(kubectl -n "$NS" exec "$pod" -- sh -c 'cd /data && sha256sum -c SHA256SUMS' 2>&1) &&
		[ "$(kubectl -n "$NS" exec "$pod" -- cat /data/SHA256SUMS)" = "$SUMS" ]; then
		data_ok=1
	fi
	printf '%s\n' "${out:-no running app pod to check the data in}" | sed 's/^/  /'
fi
if [ -n "$data_ok" ]; then
	echo "  ✓ volume data: every file matches the checksums taken before the backup"
else
	echo "  ✗ volume data: not restored or not matching"
	ok=
fi

[ -n "$ok" ] || fail "the restored app differs from the one backed up (see above)"
step "demo passed: backup $BACKUP restored namespace $NS with its volume data"
echo "the cluster keeps running; make cluster-down stops it"
