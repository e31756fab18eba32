package mover

import "github.com/kopia/kopia/snapshot/restore"

// smallFilesOutput is Kopia's own output on Windows: the small-file writer (output_unix.go) is
// made of Unix system calls. The mover runs on linux; the plugin only has to build for windows
// (make release).
func smallFilesOutput(o *restore.FilesystemOutput) restore.Output { return o }
