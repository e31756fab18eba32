# kubectl-pvbackup — see README.md. Every target installs what it needs (hack/tools.sh) and caches
# builds under .local/ (gitignored).
SHELL := /usr/bin/env bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^\([^v]\)/v0.0.0-\1/' || echo dev)
MODULE  := github.com/kubectl-pvbackup/kubectl-pvbackup
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION)
PREFIX  ?= /usr/local
GO      ?= go
export CGO_ENABLED ?= 0

.PHONY: all build install test unit integration e2e lint release release-check image bench cluster cluster-down demo clean

all: build

build: ## the plugin binary in bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-pvbackup ./cmd/kubectl-pvbackup

install: build ## copy the plugin onto PATH as kubectl-pvbackup (PREFIX=/usr/local)
	install -D -m 0755 bin/kubectl-pvbackup $(DESTDIR)$(PREFIX)/bin/kubectl-pvbackup

test: unit integration ## unit, integration and end-to-end tests (what CI runs)

unit: ## tests that need no server
	$(GO) test -count=1 ./...

integration: ## tests against a real kube-apiserver + etcd and real object stores
	hack/tools.sh controlplane
	PVBACKUP_TOOLS=$(CURDIR)/.local/bin $(GO) test -count=1 -tags integration -p 1 ./...

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	hack/tools.sh staticcheck
	.local/bin/staticcheck ./...

release: ## cross-built archives in dist/ and their sha256 in plugins.yaml
	VERSION=$(VERSION) LDFLAGS='$(LDFLAGS)' hack/release.sh

release-check: release ## install the release with krew in a sandbox, every platform (docs/install.md)
	VERSION=$(VERSION) LDFLAGS='$(LDFLAGS)' hack/release-check.sh

clean:
	rm -rf bin dist
