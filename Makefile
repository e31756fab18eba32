# kubectl-pvbackup — see README.md. Every target installs what it needs (hack/tools.sh) and caches
# builds under .local/ (gitignored).
SHELL := /usr/bin/env bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^\([^v]\)/v0.0.0-\1/' || echo dev)
MODULE  := github.com/kubectl-pvbackup/kubectl-pvbackup
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION)
PREFIX  ?= /usr/local
GO      ?= go
export CGO_ENABLED ?= 0

.PHONY: all build install test unit integration e2e fuzz lint actionlint release release-check release-tagged release-image image bench bench-resources bench-mover bench-files bench-block bench-repo bench-volumes bench-open bench-scale bench-copy cluster cluster-down demo velero-lab velero-lab-down velero-fixtures velero-e2e bench-velero clean

all: build

build: ## the plugin binary in bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-pvbackup ./cmd/kubectl-pvbackup

install: build ## copy the plugin onto PATH as kubectl-pvbackup (PREFIX=/usr/local)
	install -D -m 0755 bin/kubectl-pvbackup $(DESTDIR)$(PREFIX)/bin/kubectl-pvbackup

# integration runs every unit test too (-tags integration adds tests, hides none), so test does not
# run them twice. The tools are installed first, one installer at a time (apt holds one lock); then
# integration and e2e run side by side: the end-to-end tests mostly wait on pods and controllers
# while the integration tests compute, so both together take little more than e2e alone. -O prints
# each suite's output whole when it ends.
test: actionlint ## the workflow lint, unit, integration and end-to-end tests (what CI runs)
	hack/tools.sh controlplane
	hack/tools.sh stores
	hack/cluster.sh build
	$(MAKE) --no-print-directory -j2 -O integration e2e

unit: ## tests that need no server
	$(GO) test -count=1 ./...

# One server of each object store serves the whole run (SeaweedFS for s3://, fake-gcs-server for
# gs://, Azurite for azblob://; each test gets its own bucket: hack/stores-env), and packages run
# side by side (go test's default -p, one per core): they share no server, port or name, and a
# package's test binary links while the one before it runs.
integration: ## tests against a real kube-apiserver + etcd and real object stores (S3, GCS, Azure)
	hack/tools.sh controlplane
	hack/tools.sh stores
	PVBACKUP_TOOLS=$(CURDIR)/.local/bin $(GO) run ./hack/stores-env -- \
		$(GO) test -count=1 -tags integration ./...

FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzParse:./internal/store FuzzParseManifest:./internal/catalog FuzzValidateName:./internal/catalog \
	FuzzReader:./internal/archive FuzzNewReader:./internal/archive \
	FuzzReadTarball:./internal/velero FuzzVolumeInfo:./internal/velero
fuzz: ## each fuzz target for FUZZTIME (default 30s), all of them even when one fails, then which failed; `make unit` runs their seed corpora only
	@failed=; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:} || failed="$$failed $${t%%:*}"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (each failing input is in its package's testdata/fuzz/)"; exit 1; fi; \
	echo "fuzz: all $(words $(FUZZ_TARGETS)) targets passed"

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	hack/tools.sh staticcheck
	.local/bin/staticcheck ./...

bench: bench-resources bench-mover bench-files bench-repo ## benchmarks: ratios against reference tools run on the same data in the same run

bench-resources: build ## create vs kubectl get -A -o json, restore vs kubectl apply --server-side, on 1,000-10,000 ConfigMaps of a real apiserver
	hack/tools.sh controlplane
	hack/tools.sh kube
	$(GO) run ./hack/bench-resources -plugin bin/kubectl-pvbackup -kubectl .local/bin/kubectl

actionlint: ## lint .github/workflows with actionlint (and shellcheck)
	hack/tools.sh actionlint
	.local/bin/actionlint -no-color

IMAGE_REPO ?= ghcr.io/kubectl-pvbackup/pvbackup-mover
release: ## cross-built archives and the multi-arch mover image tarball in dist/, their sha256 in checksums.txt and plugins.yaml
	VERSION=$(VERSION) LDFLAGS='$(LDFLAGS)' IMAGE_REPO=$(IMAGE_REPO) hack/release.sh

release-check: release ## install the release with krew in a sandbox, every platform; the mover image is the archives' binaries (docs/install.md)
	VERSION=$(VERSION) LDFLAGS='$(LDFLAGS)' IMAGE_REPO=$(IMAGE_REPO) hack/release-check.sh

release-tagged: ## the checked-out commit is tagged VERSION, and make release wrote the plugins.yaml committed with it
	@test "$$(git describe --exact-match --tags HEAD 2>/dev/null)" = "$(VERSION)" || \
		{ echo "release-tagged: HEAD is not tagged $(VERSION)" >&2; exit 1; }
	@git diff --quiet -- plugins.yaml || { git diff -- plugins.yaml >&2; \
		echo "release-tagged: make release wrote another plugins.yaml than the one tagged $(VERSION): the archives are not those the manifest names" >&2; exit 1; }

release-image: build ## push dist/pvbackup-mover_VERSION.oci.tar to IMAGE_REPO:VERSION with the plugin's image push (credentials: the docker config)
	bin/kubectl-pvbackup image push '$(IMAGE_REPO):$(VERSION)' --from-archive dist/pvbackup-mover_$(VERSION).oci.tar $(IMAGE_PUSH_ARGS)

cluster: ## start the local test cluster (root; see docs/local-cluster.md), write .local/cluster/env
	hack/cluster.sh up

cluster-down: ## stop the local test cluster and remove its state
	hack/cluster.sh down

e2e: ## end-to-end tests on the local cluster (started if needed, and stopped again if e2e started it)
	hack/e2e.sh

demo: build ## back up a sample app with the real plugin, delete it, restore it, verify
	hack/demo.sh

IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TAR  ?= .local/images/pvbackup-mover.tar
image: ## the mover image as an OCI layout tarball (IMAGE_TAR; MOVER_IMAGE=ref overrides the default reference)
	GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_TAR:.tar=)-linux-$(IMAGE_ARCH)/kubectl-pvbackup ./cmd/kubectl-pvbackup
	$(GO) run -ldflags '$(LDFLAGS)' ./hack/image --binary $(IMAGE_TAR:.tar=)-linux-$(IMAGE_ARCH)/kubectl-pvbackup \
		--arch $(IMAGE_ARCH) --out $(IMAGE_TAR) $(if $(MOVER_IMAGE),--ref $(MOVER_IMAGE))

bench-mover: build ## the mover vs the kopia CLI (and restic) on a generated 1 GiB tree, filesystem and SeaweedFS, verify --read-data 100 vs kopia snapshot verify, and the mover's restore vs backup of 50,000 small files; then (compress suite) the random and a compressible 1 GiB tree (JSON logs, text, SQLite), one 2 GiB file and --upload-limit 20MiB/s on SeaweedFS (medians of 3 runs, a fresh SeaweedFS each); prints the ratios
	hack/tools.sh kopia
	hack/tools.sh seaweedfs
	@command -v restic >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
	$(GO) run ./hack/bench --mover bin/kubectl-pvbackup --kopia .local/bin/kopia --weed .local/bin/weed --work .local/bench $(BENCH_ARGS)
	@command -v sqlite3 >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null; }
	$(GO) run ./hack/bench --suite compress --mover bin/kubectl-pvbackup --kopia .local/bin/kopia --weed .local/bin/weed --work .local/bench --reps 3 $(BENCH_COMPRESS_ARGS)

bench-files: build ## cp vs kopia snapshot restore of the same snapshot (six pairs, judged on their median), and an in-place sync of 1% changed files vs restoring that 1% plus a walk (the bench-mover tree)
	hack/tools.sh kopia
	$(GO) run ./hack/bench --suite files --mover bin/kubectl-pvbackup --kopia .local/bin/kopia --weed '' --work .local/bench --reps 6 $(BENCH_ARGS)

bench-block: build ## raw block volumes: a 2 GiB device image (60% data in random and zero runs), first backup, incremental after 1% changed, restore — the mover's block path vs kopia snapshot create --stdin-file / snapshot restore of the same image on SeaweedFS; prints the ratios and the bucket growth (BENCH_BLOCK_ARGS)
	hack/tools.sh kopia
	hack/tools.sh seaweedfs
	$(GO) run ./hack/bench --suite block --mover bin/kubectl-pvbackup --kopia .local/bin/kopia --weed .local/bin/weed --work .local/bench $(BENCH_BLOCK_ARGS)

bench-repo: ## what a mover pays to open its repository with 1, 100 and 1,000 daily snapshots in it (simulated days with daily maintenance, ~30 min; BENCH_REPO_ARGS=--mode=burst: all within minutes) (SeaweedFS)
	hack/tools.sh seaweedfs
	$(GO) run ./hack/bench-repo --weed .local/bin/weed --work .local/bench-repo $(BENCH_REPO_ARGS)

bench-copy: ## copy (package copier) from SeaweedFS to fake-gcs-server: a backup of a 200 MiB tree, then an incremental one (5% of the files rewritten); prints the bytes moved against what its creation uploaded (<= 1.2) and the times
	hack/tools.sh seaweedfs
	hack/tools.sh fakegcs
	$(GO) run ./hack/bench-copy --weed .local/bin/weed --fake-gcs .local/bin/fake-gcs-server --work .local/bench-copy $(BENCH_COPY_ARGS)

bench-volumes: ## on the local cluster: snapshot-move overhead per volume, 10 PVCs with --parallel 1 vs 4 (make cluster first)
	. .local/cluster/env && PVBACKUP_MOVER_IMAGE=$${PVBACKUP_MOVER_IMAGE:-localhost/pvbackup/mover:e2e} \
		$(GO) test -count=1 -tags 'e2e measure' -run TestMeasureVolumes -v -timeout 30m ./test/e2e/ | grep -E 'MEASURE|^(ok|FAIL|---)'

bench-scale: ## on the three-node lab: 60 small claims of csi-dir, csi-zonal and csi-local spread over the nodes, snapshot-move backup and restore at the default --parallel and 8: wall time, per-volume overhead, movers per node (make cluster first; PVBACKUP_SCALE_CLAIMS=N, PVBACKUP_SCALE_PARALLEL="2 4 8"; ~10 min at 60; prints each volume's timeline)
	. .local/cluster/env && PVBACKUP_MOVER_IMAGE=$${PVBACKUP_MOVER_IMAGE:-localhost/pvbackup/mover:e2e} \
		$(GO) test -count=1 -tags 'e2e measure' -run TestMeasureScale -v -timeout 60m ./test/e2e/ | grep -E 'MEASURE|^(ok|FAIL|---)'

bench-open: ## on the local cluster: 100 snapshot-move movers in a row, each must open its repository in <= 2 s (PVBACKUP_MEASURE_MOVERS=N)
	. .local/cluster/env && PVBACKUP_MOVER_IMAGE=$${PVBACKUP_MOVER_IMAGE:-localhost/pvbackup/mover:e2e} \
		$(GO) test -count=1 -tags 'e2e measure' -run TestMeasureMoverOpen -v -timeout 40m ./test/e2e/ | grep -E 'MEASURE|open [0-9.]+s|^\s+\+|^(ok|FAIL|---)'

# Velero in the lab (docs/velero.md): not part of test; CI never builds Velero. Builds Velero and its AWS
# plugin from the module proxy (minutes, under nice) into .local/velero-lab. Take the cluster lock on a
# shared machine: flock /work/locks/cluster make velero-lab
velero-lab: ## build Velero v1.18.3 and its images, install it into the running lab cluster (make cluster first)
	hack/velero-lab.sh up

velero-lab-down: ## remove every trace of Velero from the lab cluster (namespace, CRDs, cluster roles, webhooks, snapshots, bucket)
	hack/velero-lab.sh down

velero-e2e: ## real Velero 1.18 backs up an app on two lab nodes (fs-backup and data mover), is removed, and velero restore brings it back, checksums equal (starts and stops the cluster if it is not running)
	hack/velero-lab.sh e2e

bench-velero: ## Velero 1.18 (data mover) vs create/restore (snapshot-move) on the same namespace in the same run: 2 claims, 1 GiB, ~2,000 objects; wall time, bucket bytes, peak memory, ratios (starts and stops the cluster if it is not running)
	hack/velero-lab.sh bench

velero-fixtures: ## re-record testdata/velero/v1.18 from real Velero backups in the lab (starts and stops the cluster if it is not running)
	hack/velero-lab.sh fixtures

clean:
	rm -rf bin dist
