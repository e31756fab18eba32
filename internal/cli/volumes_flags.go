package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// moverOptions are the flags that shape mover Jobs, shared by create and restore.
type moverOptions struct {
	Image          string
	PullPolicy     string
	Location       string
	Secret         string
	ServiceAccount string
	RunAs          int64
	FSGroup        int64
	Privileged     bool
	CPURequest     string
	MemoryRequest  string
	CPULimit       string
	MemoryLimit    string
	Parallel       int
	Timeout        time.Duration
	Deadline       time.Duration
}

func (o *moverOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Image, "mover-image", version.MoverImage(), "image of the mover Jobs (built by `make image`; mirror it for air-gapped clusters)")
	fs.StringVar(&o.PullPolicy, "mover-pull-policy", "IfNotPresent", "imagePullPolicy of the mover: IfNotPresent, Always or Never")
	fs.StringVar(&o.Location, "mover-location", "", "the backup location as mover pods reach it, when it differs from --to/--from (e.g. an in-cluster S3 endpoint)")
	fs.StringVar(&o.Secret, "mover-secret", "", "a Secret of yours, in each namespace, with PVBACKUP_PASSWORD and the storage credentials (instead of a temporary Secret made from your environment)")
	fs.StringVar(&o.ServiceAccount, "mover-service-account", "", "service account of the mover pods (for workload identity: IRSA, GKE, Azure)")
	fs.Int64Var(&o.RunAs, "mover-run-as", -1, "user and group ID the mover runs as (default the image's 65532): the owner of the volume's files")
	fs.Int64Var(&o.FSGroup, "mover-fs-group", -1, "fsGroup of the mover pods: files readable by this group can be read")
	fs.BoolVar(&o.Privileged, "mover-privileged", false, "run the mover as root with CHOWN, DAC_OVERRIDE, FOWNER, FSETID (all allowed by Pod Security baseline): reads every file and restores owners; needs Pod Security baseline")
	fs.StringVar(&o.CPURequest, "mover-cpu-request", "100m", "CPU request of mover pods")
	fs.StringVar(&o.MemoryRequest, "mover-memory-request", "256Mi", "memory request of mover pods")
	fs.StringVar(&o.CPULimit, "mover-cpu-limit", "", "CPU limit of mover pods (default none)")
	fs.StringVar(&o.MemoryLimit, "mover-memory-limit", "2Gi", "memory limit of mover pods")
	fs.IntVar(&o.Parallel, "parallel", 2, "volumes moved at the same time")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long a step (snapshot ready, mover start, mover output) may show no progress before its volume fails")
	fs.DurationVar(&o.Deadline, "mover-deadline", 6*time.Hour, "activeDeadlineSeconds of mover Jobs")
}

// config builds the mover configuration. location is --to/--from; password the repository's.
func (o *moverOptions) config(location, password string) (volumes.MoverConfig, error) {
	c := volumes.MoverConfig{Image: o.Image, PullPolicy: corev1.PullPolicy(o.PullPolicy), Location: location, Password: password,
		Secret: o.Secret, ServiceAccount: o.ServiceAccount, Privileged: o.Privileged, ActiveDeadline: o.Deadline}
	switch c.PullPolicy {
	case corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever:
	default:
		return c, fmt.Errorf("--mover-pull-policy=%q: use IfNotPresent, Always or Never", o.PullPolicy)
	}
	if o.Image == "" {
		return c, fmt.Errorf("--mover-image is empty")
	}
	if o.Location != "" {
		if _, _, err := store.Parse(o.Location); err != nil {
			return c, fmt.Errorf("--mover-location: %w", err)
		}
		c.Location = o.Location
	}
	if bucketURL, _, err := store.Parse(c.Location); err == nil && strings.HasPrefix(bucketURL, "file://") {
		return c, fmt.Errorf("location %s is a directory on this machine, which mover pods cannot reach: back up volumes to object storage, or pass --mover-location with a URL the pods reach (or --volumes=none)", store.Redact(c.Location))
	}
	if o.RunAs >= 0 {
		c.RunAsUser = &o.RunAs
	}
	if o.FSGroup >= 0 {
		c.FSGroup = &o.FSGroup
	}
	if o.Parallel < 1 {
		return c, fmt.Errorf("--parallel %d: must be 1 or more", o.Parallel)
	}
	var err error
	if c.Requests, err = resources("request", o.CPURequest, o.MemoryRequest); err != nil {
		return c, err
	}
	if c.Limits, err = resources("limit", o.CPULimit, o.MemoryLimit); err != nil {
		return c, err
	}
	if c.Secret == "" {
		c.Env = map[string]string{}
		for _, k := range volumes.CredentialEnv {
			if v, ok := os.LookupEnv(k); ok {
				c.Env[k] = v
			}
		}
		for _, k := range volumes.CredentialFiles {
			if p := os.Getenv(k); p != "" {
				b, err := os.ReadFile(p)
				if err != nil {
					return c, fmt.Errorf("%s=%s: %w (the movers need its content)", k, p, err)
				}
				if c.Files == nil {
					c.Files = map[string][]byte{}
				}
				c.Files[k] = b
			}
		}
	}
	return c, nil
}

func resources(kind, cpu, mem string) (corev1.ResourceList, error) {
	l := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem} {
		if v == "" {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("--mover-%s-%s=%q: %w", name, kind, v, err)
		}
		l[name] = q
	}
	return l, nil
}

// dataProgress prints the movers' progress: JSON events with -o json; on a terminal one status
// line, redrawn in place, with a bar per active volume; otherwise a line per volume every 5s.
func dataProgress(w io.Writer, jsonOut bool) func(ns, pvc string, ev mover.Event) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	active := map[string]mover.Event{}
	var drawn time.Time
	return func(ns, pvc string, ev mover.Event) {
		mu.Lock()
		defer mu.Unlock()
		key := ns + "/" + pvc
		if jsonOut {
			fmt.Fprintf(w, `{"volume":%q,"event":%q,"op":%q,"files":%d,"bytes":%d,"totalBytes":%d,"bytesPerSecond":%.0f}`+"\n", key, ev.Event, ev.Op, ev.Files, ev.Bytes, ev.TotalBytes, ev.BytesPerSecond)
			return
		}
		if tty && !jsonOut {
			switch ev.Event {
			case mover.EventProgress:
				active[key] = ev
			case mover.EventResult:
				delete(active, key)
			}
			if time.Since(drawn) < 250*time.Millisecond && ev.Event == mover.EventProgress {
				return
			}
			drawn = time.Now()
			keys := make([]string, 0, len(active))
			for k := range active {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, bar(k, active[k]))
			}
			fmt.Fprint(w, "\r\x1b[K"+strings.Join(parts, "  "))
			return
		}
		if ev.Event != mover.EventProgress || time.Since(last[key]) < 5*time.Second {
			return
		}
		last[key] = time.Now()
		line := fmt.Sprintf("   %s: %d files, %s", key, ev.Files, progress.Bytes(ev.Bytes))
		if ev.TotalBytes > 0 {
			line += " of " + progress.Bytes(ev.TotalBytes)
		}
		if ev.BytesPerSecond > 0 {
			line += fmt.Sprintf(", %s/s", progress.Bytes(int64(ev.BytesPerSecond)))
			if ev.TotalBytes > ev.Bytes {
				line += fmt.Sprintf(", ETA %s", (time.Duration(float64(ev.TotalBytes-ev.Bytes)/ev.BytesPerSecond) * time.Second).Round(time.Second))
			}
		}
		fmt.Fprintln(w, line)
	}
}

// bar is one volume's progress: name, a 10-cell bar, bytes, rate and ETA.
func bar(name string, ev mover.Event) string {
	frac := 0.0
	if ev.TotalBytes > 0 {
		frac = min(1, float64(ev.Bytes)/float64(ev.TotalBytes))
	}
	cells := int(frac * 10)
	s := fmt.Sprintf("%s [%s%s] %s", name, strings.Repeat("#", cells), strings.Repeat(".", 10-cells), progress.Bytes(ev.Bytes))
	if ev.BytesPerSecond > 0 {
		s += fmt.Sprintf(" %s/s", progress.Bytes(int64(ev.BytesPerSecond)))
		if ev.TotalBytes > ev.Bytes {
			s += fmt.Sprintf(" ETA %s", (time.Duration(float64(ev.TotalBytes-ev.Bytes)/ev.BytesPerSecond) * time.Second).Round(time.Second))
		}
	}
	return s
}
