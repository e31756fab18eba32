package mover

import (
	"encoding/json"
	"strconv"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// The plugin ↔ mover contract: how the plugin's Jobs pass settings to the mover (environment
// variables, each also a flag of `kubectl-pvbackup mover`), the Secret keys the mover reads, and
// the termination message it leaves. Both sides use only these names: the plugin builds Jobs with
// Invocation.Env and reads results with ParseResult; the mover's flags fall back to FlagEnv.
const (
	EnvLocation        = store.EnvLocation
	EnvSourceNamespace = "PVBACKUP_SOURCE_NAMESPACE"
	EnvPVC             = "PVBACKUP_PVC"
	EnvBackup          = "PVBACKUP_BACKUP"
	EnvSnapshot        = "PVBACKUP_SNAPSHOT"
	EnvFromDir         = "PVBACKUP_FROM_DIR"
	EnvSource          = "PVBACKUP_SOURCE"
	EnvTarget          = "PVBACKUP_TARGET"
	EnvParallel        = "PVBACKUP_PARALLEL"
	EnvOnError         = "PVBACKUP_ON_ERROR"
	EnvResult          = "PVBACKUP_RESULT"
	EnvCacheDir        = "PVBACKUP_CACHE_DIR"
	EnvCompression     = "PVBACKUP_COMPRESSION"
	EnvPasswordFile    = "PVBACKUP_PASSWORD_FILE"
	EnvSkipOwners      = "PVBACKUP_SKIP_OWNERS"
	EnvSparse          = "PVBACKUP_SPARSE"
	EnvRequireEmpty    = "PVBACKUP_REQUIRE_EMPTY"
	EnvSubPath         = "PVBACKUP_SUB_PATH"
	EnvSync            = "PVBACKUP_SYNC"
	EnvDiffOnly        = "PVBACKUP_DIFF_ONLY"
	EnvDebug           = "PVBACKUP_MOVER_DEBUG"
	EnvProbeToken      = "PVBACKUP_PROBE_TOKEN"
	EnvProbeVerify     = "PVBACKUP_PROBE_VERIFY"
	EnvReadOnly        = "PVBACKUP_READ_ONLY"
	EnvTmpDir          = "TMPDIR"
)

// Secret keys of the mover's Secret (read through envFrom, so each key is also a variable).
const (
	// SecretKeyPassword holds the repository password (the variable the mover reads it from).
	SecretKeyPassword = password.EnvPassword
	// SecretFilePrefix prefixes the keys of credential files (GOOGLE_APPLICATION_CREDENTIALS):
	// key SecretFilePrefix+VAR is mounted and VAR points at the mounted copy.
	SecretFilePrefix = "file-"
)

// ContainerName is the mover's container in its Job; its logs are the events.
const ContainerName = "mover"

// DefaultResultPath is the container's default terminationMessagePath: the mover writes its
// Result there (MarshalResult) and the plugin reads it back with ParseResult.
const DefaultResultPath = "/dev/termination-log"

// FlagEnv maps each `mover backup|restore|probe` flag to the variable it falls back to.
var FlagEnv = []struct{ Flag, Env string }{
	{"location", EnvLocation},
	{"source-namespace", EnvSourceNamespace},
	{"password-file", EnvPasswordFile},
	{"parallel", EnvParallel},
	{"on-error", EnvOnError},
	{"result", EnvResult},
	{"read-only", EnvReadOnly},
	{"cache-dir", EnvCacheDir},
	{"source", EnvSource},
	{"pvc", EnvPVC},
	{"backup", EnvBackup},
	{"compression", EnvCompression},
	{"snapshot", EnvSnapshot},
	{"from-dir", EnvFromDir},
	{"target", EnvTarget},
	{"skip-owners", EnvSkipOwners},
	{"sparse", EnvSparse},
	{"require-empty", EnvRequireEmpty},
	{"sub-path", EnvSubPath},
	{"sync", EnvSync},
	{"diff-only", EnvDiffOnly},
	{"debug", EnvDebug},
	{"token", EnvProbeToken},
	{"verify", EnvProbeVerify},
}

// Invocation is what the plugin tells one mover run through its environment.
type Invocation struct {
	Op              string // OpBackup, OpRestore or OpProbe: the subcommand
	Location        string
	SourceNamespace string
	PVC             string
	Backup          string
	CacheDir        string // also TMPDIR
	Dir             string // the mounted volume: the backup's source or the restore's target
	Snapshot        string // restore
	// FromDir, instead of Snapshot, restores from a mounted volume made from a kept VolumeSnapshot.
	FromDir    string
	SkipOwners bool // restore
	// RequireEmpty makes a restore fail, writing nothing, when the target holds anything but lost+found.
	RequireEmpty bool
	// SubPath restores only this directory of the snapshot, to the same path in the target.
	SubPath string
	// Sync makes the target equal to the snapshot; DiffOnly only counts what Sync would change.
	Sync, DiffOnly bool
	// Debug keeps the storage calls' HTTP timings in the result (create --mover-debug).
	Debug bool
	// ProbeToken is what doctor's probe writes into Dir, or, with ProbeVerify, expects to read back.
	ProbeToken  string
	ProbeVerify bool
	// ReadOnly opens the repository read-only, as another tool's (Velero's): restore only.
	ReadOnly bool
}

// EnvVar is one name=value of an Invocation.
type EnvVar struct{ Name, Value string }

// Args are the container arguments (the image's entrypoint is `kubectl-pvbackup mover`).
func (in Invocation) Args() []string { return []string{in.Op} }

// Env is the Invocation as environment variables, in a stable order.
func (in Invocation) Env() []EnvVar {
	env := []EnvVar{
		{EnvLocation, in.Location},
		{EnvSourceNamespace, in.SourceNamespace},
		{EnvPVC, in.PVC},
		{EnvBackup, in.Backup},
		{EnvCacheDir, in.CacheDir},
		{EnvTmpDir, in.CacheDir},
	}
	if in.Debug {
		env = append(env, EnvVar{EnvDebug, strconv.FormatBool(true)})
	}
	switch in.Op {
	case OpBackup:
		return append(env, EnvVar{EnvSource, in.Dir})
	case OpProbe:
		env = append(env, EnvVar{EnvTarget, in.Dir}, EnvVar{EnvProbeToken, in.ProbeToken})
		if in.ProbeVerify {
			env = append(env, EnvVar{EnvProbeVerify, strconv.FormatBool(true)})
		}
		return env
	}
	env = append(env, EnvVar{EnvTarget, in.Dir})
	if in.FromDir != "" {
		env = append(env, EnvVar{EnvFromDir, in.FromDir})
	} else {
		env = append(env, EnvVar{EnvSnapshot, in.Snapshot})
	}
	if in.SkipOwners {
		env = append(env, EnvVar{EnvSkipOwners, strconv.FormatBool(true)})
	}
	if in.RequireEmpty {
		env = append(env, EnvVar{EnvRequireEmpty, strconv.FormatBool(true)})
	}
	if in.Sync {
		env = append(env, EnvVar{EnvSync, strconv.FormatBool(true)})
	}
	if in.DiffOnly {
		env = append(env, EnvVar{EnvDiffOnly, strconv.FormatBool(true)})
	}
	if in.SubPath != "" {
		env = append(env, EnvVar{EnvSubPath, in.SubPath})
	}
	if in.ReadOnly {
		env = append(env, EnvVar{EnvReadOnly, strconv.FormatBool(true)})
	}
	return env
}

// ParseResult reads a termination message written by WriteResult; ok is false when it holds
// no mover Result (an older image, a crash before the result was written).
func ParseResult(msg string) (r *Result, ok bool) {
	if msg == "" {
		return nil, false
	}
	var res Result
	if err := json.Unmarshal([]byte(msg), &res); err != nil || res.Op == "" {
		return nil, false
	}
	return &res, true
}
