// Package e2e holds the end-to-end tests (build tag e2e) that run against the local test cluster:
// `make e2e` starts it with hack/cluster.sh up, sources .local/cluster/env and runs them.
//
// Every test calls t.Parallel and works in namespaces of its own (Cluster.Namespace), with a bucket
// prefix of its own (location) and uniquely named cluster-scoped objects: the cluster mostly waits,
// so running them together keeps the warm suite short. A test that must change cluster-wide state
// (stop a controller, change a default) does not call t.Parallel: Go runs it first, alone, and it
// puts the state back in t.Cleanup.
package e2e
