package mover

import "testing"

// Every variable the plugin sets for a mover is one the mover reads (a flag's fallback), so the
// two sides cannot drift apart.
func TestInvocationEnvIsRead(t *testing.T) {
	read := map[string]bool{EnvTmpDir: true} // TMPDIR is read by Go itself
	for _, fe := range FlagEnv {
		read[fe.Env] = true
	}
	for _, in := range []Invocation{
		{Op: OpBackup, Location: "s3://b", SourceNamespace: "ns", PVC: "p", Backup: "b", CacheDir: "/tmp", Dir: "/tmp/data", Debug: true, Compression: "zstd", UploadLimit: "20MiB/s", DownloadLimit: "1GB/s"},
		{Op: OpRestore, Location: "s3://b", SourceNamespace: "ns", PVC: "p", CacheDir: "/tmp", Dir: "/tmp/data", Snapshot: "k1", SkipOwners: true},
		{Op: OpProbe, Location: "s3://b", SourceNamespace: "ns", PVC: "p", CacheDir: "/tmp", Dir: "/tmp/data", ProbeToken: "t", ProbeVerify: true},
	} {
		for _, e := range in.Env() {
			if !read[e.Name] {
				t.Errorf("%s: the plugin sets %s but the mover reads no such variable", in.Op, e.Name)
			}
		}
	}
	r, ok := ParseResult(string(MarshalResult(&Result{Op: OpRestore, OK: true, Files: 3})))
	if !ok || r.Files != 3 || !r.OK {
		t.Errorf("ParseResult(MarshalResult) = %+v, %v", r, ok)
	}
	if _, ok := ParseResult("panic: boom"); ok {
		t.Error("ParseResult accepted a message that is no result")
	}
}

// A backup's compression reaches the mover through the contract's variable; other operations
// and the default ("") set none.
func TestInvocationCompression(t *testing.T) {
	find := func(in Invocation) (string, bool) {
		for _, e := range in.Env() {
			if e.Name == EnvCompression {
				return e.Value, true
			}
		}
		return "", false
	}
	if v, ok := find(Invocation{Op: OpBackup, Compression: "s2-default"}); !ok || v != "s2-default" {
		t.Errorf("backup with compression: %s = %q, %v", EnvCompression, v, ok)
	}
	if _, ok := find(Invocation{Op: OpBackup}); ok {
		t.Errorf("backup without compression sets %s", EnvCompression)
	}
	if _, ok := find(Invocation{Op: OpRestore, Compression: "zstd"}); ok {
		t.Errorf("restore sets %s", EnvCompression)
	}
}
