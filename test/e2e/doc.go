// Package e2e holds the end-to-end tests (build tag e2e) that run against the local test cluster:
// `make e2e` starts it with hack/cluster.sh up, sources .local/cluster/env and runs them.
package e2e
