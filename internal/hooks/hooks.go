// Package hooks runs consistency commands in application pods around a volume backup: a pre hook
// just before the pod's volumes are snapshotted (or uploaded by fs), a post hook right after the
// snapshots are created (or the uploads are done). Hooks come from pod annotations — the plugin's
// own and Velero's, so annotated applications move over unchanged — or from flags with a label
// selector.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// Phases.
const (
	Pre  = "pre"
	Post = "post"
)

// What a failing hook does.
const (
	OnErrorFail     = "Fail"     // the pod's volumes fail (pre), or are marked failed (post)
	OnErrorContinue = "Continue" // logged; the backup goes on
)

// DefaultTimeout bounds a hook without its own timeout.
const DefaultTimeout = 30 * time.Second

// annotation prefixes, in order of precedence: "<phase>.hook.pvbackup.io/command", ...
var prefixes = []string{".hook.pvbackup.io/", ".hook.backup.velero.io/"}

// Hook is one command to run in one container of one pod.
type Hook struct {
	Phase     string        `json:"phase"`
	Namespace string        `json:"namespace"`
	Pod       string        `json:"pod"`
	Container string        `json:"container"`
	Command   []string      `json:"command"`
	OnError   string        `json:"onError"`
	Timeout   time.Duration `json:"timeout"`
	Source    string        `json:"source"` // the annotation prefix or "flag"
}

func (h Hook) String() string {
	return fmt.Sprintf("%s hook in %s/%s[%s]: %s", h.Phase, h.Namespace, h.Pod, h.Container, strings.Join(h.Command, " "))
}

// Flags are hooks given on the command line for the pods a selector matches.
type Flags struct {
	Selector  labels.Selector // nil or empty: every pod that mounts a backed-up volume
	Container string
	Pre, Post string // shell commands ("" = none), run with sh -c
	OnError   string
	Timeout   time.Duration
}

// parseCommand reads a command annotation: a JSON array (Velero's form) or a shell line.
func parseCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		var cmd []string
		if err := json.Unmarshal([]byte(s), &cmd); err != nil {
			return nil, fmt.Errorf("command %q is not a JSON array of strings: %w", s, err)
		}
		if len(cmd) == 0 {
			return nil, fmt.Errorf("command %q is empty", s)
		}
		return cmd, nil
	}
	if s == "" {
		return nil, fmt.Errorf("command is empty")
	}
	return []string{"/bin/sh", "-c", s}, nil
}

func normOnError(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "fail":
		return OnErrorFail, nil
	case "continue":
		return OnErrorContinue, nil
	}
	return "", fmt.Errorf("on-error %q: use Fail or Continue", s)
}

// ForPod returns the pod's hooks of a phase (at most one): its annotations first, then flags.
func ForPod(p *corev1.Pod, phase string, f Flags) (*Hook, error) {
	for _, pre := range prefixes {
		base := phase + pre
		cmdText, ok := p.Annotations[base+"command"]
		if !ok {
			continue
		}
		h := &Hook{Phase: phase, Namespace: p.Namespace, Pod: p.Name, Container: p.Annotations[base+"container"], Source: strings.TrimPrefix(pre, ".")}
		where := fmt.Sprintf("pod %s/%s annotation %s", p.Namespace, p.Name, base)
		var err error
		if h.Command, err = parseCommand(cmdText); err != nil {
			return nil, fmt.Errorf("%scommand: %w", where, err)
		}
		if h.OnError, err = normOnError(p.Annotations[base+"on-error"]); err != nil {
			return nil, fmt.Errorf("%son-error: %w", where, err)
		}
		h.Timeout = DefaultTimeout
		if t := p.Annotations[base+"timeout"]; t != "" {
			if h.Timeout, err = time.ParseDuration(t); err != nil {
				return nil, fmt.Errorf("%stimeout %q: %w", where, t, err)
			}
		}
		return h.withContainer(p)
	}
	cmd := f.Pre
	if phase == Post {
		cmd = f.Post
	}
	if cmd == "" || (f.Selector != nil && !f.Selector.Empty() && !f.Selector.Matches(labels.Set(p.Labels))) {
		return nil, nil
	}
	onErr, err := normOnError(f.OnError)
	if err != nil {
		return nil, fmt.Errorf("--hook-on-error: %w", err)
	}
	h := &Hook{Phase: phase, Namespace: p.Namespace, Pod: p.Name, Container: f.Container, Command: []string{"/bin/sh", "-c", cmd}, OnError: onErr, Timeout: f.Timeout, Source: "flag"}
	if h.Timeout == 0 {
		h.Timeout = DefaultTimeout
	}
	return h.withContainer(p)
}

func (h *Hook) withContainer(p *corev1.Pod) (*Hook, error) {
	if h.Container == "" {
		if len(p.Spec.Containers) == 0 {
			return nil, fmt.Errorf("pod %s/%s has no containers for its %s hook", p.Namespace, p.Name, h.Phase)
		}
		h.Container = p.Spec.Containers[0].Name
		return h, nil
	}
	for _, c := range p.Spec.Containers {
		if c.Name == h.Container {
			return h, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s has no container %q for its %s hook", p.Namespace, p.Name, h.Container, h.Phase)
}

// Output is what a hook printed.
type Output struct {
	Stdout, Stderr string
}

// Executor runs hooks in pods through the apiserver's exec subresource.
type Executor struct {
	Kube   kubernetes.Interface
	Config *rest.Config
}

// Run executes the hook and waits for it, at most its timeout. A non-zero exit is an error that
// carries the output's last line.
func (e *Executor) Run(ctx context.Context, h Hook) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req := e.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(h.Namespace).Name(h.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: h.Container, Command: h.Command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", req.URL().String())
	if err != nil {
		return Output{}, fmt.Errorf("%s: %w", h, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.Config, "POST", req.URL())
	if err == nil {
		if f, ferr := remotecommand.NewFallbackExecutor(exec, spdy, func(err error) bool { return true }); ferr == nil {
			exec = f
		}
	}
	var out, errb bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	o := Output{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return o, fmt.Errorf("%s: did not finish within %s", h, h.Timeout)
		}
		last := strings.TrimSpace(o.Stderr)
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		if last != "" {
			return o, fmt.Errorf("%s: %v: %s", h, err, last)
		}
		return o, fmt.Errorf("%s: %w", h, err)
	}
	return o, nil
}
