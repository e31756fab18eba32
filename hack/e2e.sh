#!/usr/bin/env bash
# make e2e: the test CSI driver's own tests (csi-sanity included), then the end-to-end tests on the
# local cluster. The cluster is started if it is not running, and stopped again at the end if this
# script started it (E2E_KEEP_CLUSTER=1 keeps it), so a run leaves the machine as it found it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo ">>> test CSI driver: csi-sanity and driver tests" >&2
(cd test/csidriver && go test -count=1 ./...)

started=
if ! hack/cluster.sh status >/dev/null 2>&1; then
	started=1
fi
stop() {
	local rc=$?
	if [ -n "$started" ] && [ "${E2E_KEEP_CLUSTER:-}" != 1 ]; then
		hack/cluster.sh down || rc=1
	fi
	exit $rc
}
trap stop EXIT
# The mover image the volume tests run (--mover-image), built from this checkout.
export PVBACKUP_MOVER_IMAGE=${PVBACKUP_MOVER_IMAGE:-localhost/pvbackup/mover:e2e}
echo ">>> mover image $PVBACKUP_MOVER_IMAGE" >&2
make image MOVER_IMAGE="$PVBACKUP_MOVER_IMAGE" IMAGE_TAR=.local/images/pvbackup-mover-e2e.tar
# The tests run that same binary as the plugin (built for this machine: GOOS linux, its GOARCH).
export PVBACKUP_E2E_PLUGIN=$ROOT/.local/images/pvbackup-mover-e2e-linux-$(go env GOARCH)/kubectl-pvbackup
hack/cluster.sh up
hack/cluster.sh load-image .local/images/pvbackup-mover-e2e.tar >/dev/null
# The same image as an archive: the registry tests push it into the lab's registries (image push
# --from-archive) and their movers pull it from there.
export PVBACKUP_MOVER_ARCHIVE=$ROOT/.local/images/pvbackup-mover-e2e.tar
# shellcheck source=/dev/null
. .local/cluster/env
echo ">>> end-to-end tests" >&2
# The tests wait on the cluster far more than they compute: they run in parallel, a namespace each
# (tests that change cluster-wide state do not call t.Parallel, so Go runs them first, alone). Six at
# once: with four, the tests' slots were full for the whole parallel phase while the two cores were
# not (the tests mostly wait on pods and controllers); six took the suite from 575 s to 487 s.
# GCS (fake-gcs-server) and Azure (Azurite) for the object store tests, on the gateway address
# that this machine and the pods both reach; the cluster serves S3 itself.
hack/tools.sh fakegcs
hack/tools.sh azurite
gateway=${PVBACKUP_S3_ENDPOINT#http://}
gateway=${gateway%:*}
PVBACKUP_TOOLS=$ROOT/.local/bin go run ./hack/stores-env --addr "$gateway" --stores gcs,azure -- \
	go test -count=1 -tags e2e -p 1 -parallel "${E2E_PARALLEL:-6}" -timeout 30m "${@:-./test/e2e/...}"
