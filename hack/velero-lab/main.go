// Command velero-lab is the Go side of hack/velero-lab.sh (Velero in the lab, docs/velero.md):
//
//	velero-lab image --file SRC=/DST... --entrypoint CMD --ref REF --title T --out FILE.tar
//	    an OCI image layout in a tarball: one layer of the files named, the CA certificates,
//	    passwd/group entries and an empty /tmp, built by internal/image as hack/image builds the
//	    mover image (no container engine). The lab makes Velero's image (velero, velero-restore-helper and
//	    velero-helper at /, as Velero's Dockerfile lays them out) and the AWS plugin's with it.
//	velero-lab bucket create|delete|check URL
//	    create the S3 bucket of URL, delete it with everything in it, or fail if it exists
//	velero-lab export URL DIR --backup NAME... --repo NAMESPACE...
//	    copy backups/<NAME>/ and kopia/<NAMESPACE>/ (without Kopia's _log blobs) under URL's
//	    prefix into DIR: the fixtures of testdata/velero
package main

import (
	"errors"
	"fmt"
	"os"
)

var errUsage = errors.New("usage: velero-lab image --file SRC=/DST... --entrypoint CMD --ref REF --title T --out FILE.tar | bucket create|delete|check URL | export URL DIR --backup NAME --repo NS")

func main() {
	if len(os.Args) < 2 {
		fail(errUsage)
	}
	var err error
	switch os.Args[1] {
	case "image":
		err = runImage(os.Args[2:])
	case "bucket":
		err = runBucket(os.Args[2:])
	case "export":
		err = runExport(os.Args[2:])
	default:
		err = errUsage
	}
	fail(err)
}

func fail(err error) {
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "velero-lab:", err)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}
