package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// A hold stops every process that can write to a set of volumes, for a group cut.
//
// Who can write: the volumes are reached only through the targets the driver published, and the
// kubelet names each target after its pod (<kubelet>/pods/<uid>/volumes/... for a filesystem,
// <kubelet>/plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid> for a block device). Every
// process of a pod lives in the pod's cgroup (<cgroup-root>/kubepods[/burstable|/besteffort]/pod<uid>,
// the kubelet's cgroupfs layout). So the driver freezes those cgroups — the v1 freezer
// (freezer.state FROZEN) or v2 (cgroup.freeze 1) — and waits until the kernel reports them frozen:
// a frozen task stops at its next return to user space, so every write(2) it issued has completed
// and none is in progress. Block members' device caches are then flushed into their images, every
// member is copied, and the cgroups are thawed.
//
// Each cgroup is locked (flock on its directory, in path order) for the hold, so the dir and zonal
// drivers, two processes, never thaw a pod the other still holds. The cgroups being frozen are
// recorded in the state first: a driver killed mid-hold thaws them when it starts again.
//
// What it does not cover, and the cut then is not a point in time for it: a process outside the
// pods that reaches the data another way (the driver's data directory on the host, a hostPath
// pod), and asynchronous I/O (io_uring, AIO) already submitted when the freeze began.
type hold struct {
	d       *Driver
	cgroups []string   // frozen (or being frozen), in lock order
	locks   []*os.File // flock'd cgroup directories
	start   time.Time
}

// freezeTimeout bounds the wait for the kernel to freeze every task of the held cgroups.
const freezeTimeout = 10 * time.Second

// lockTimeout bounds the wait for another driver's hold on the same pods.
const lockTimeout = 30 * time.Second

func (h *hold) String() string {
	return fmt.Sprintf("%d pod cgroup(s) %v", len(h.cgroups), h.cgroups)
}

// hold freezes the pods that have any of vols published. Callers hold d.mu (no publish or
// unpublish happens meanwhile) and call release.
func (d *Driver) hold(ctx context.Context, vols []*volume) (*hold, error) {
	d.thawLeftovers()
	cgroups, err := d.writerCgroups(vols)
	if err != nil {
		return nil, err
	}
	h := &hold{d: d, start: time.Now()}
	if err := h.lock(ctx, cgroups); err != nil {
		h.release()
		return nil, err
	}
	h.cgroups = cgroups
	d.st.Frozen = append(d.st.Frozen, cgroups...)
	if err := d.saveState(); err != nil {
		h.release()
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	for _, cg := range cgroups {
		if err := setFrozen(cg, true); err != nil {
			h.release()
			return nil, errf(codes.Internal, "freeze %s: %v", cg, err)
		}
	}
	if err := waitFrozen(ctx, cgroups, freezeTimeout); err != nil {
		h.release()
		return nil, errf(codes.Unavailable, "%v", err)
	}
	return h, nil
}

// lock takes the flock of every cgroup directory, in order, waiting for other holders.
func (h *hold) lock(ctx context.Context, cgroups []string) error {
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for _, cg := range cgroups {
		f, err := os.Open(cg)
		if err != nil {
			return errf(codes.Internal, "open cgroup %s: %v", cg, err)
		}
		h.locks = append(h.locks, f)
		for {
			err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EWOULDBLOCK) {
				return errf(codes.Internal, "lock cgroup %s: %v", cg, err)
			}
			select {
			case <-ctx.Done():
				return errf(codes.Aborted, "cgroup %s is held by another group cut (another driver?) for longer than %s", cg, lockTimeout)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// release thaws the held cgroups, unlocks them and says for how long they were held.
func (h *hold) release() (time.Duration, error) {
	held := time.Since(h.start)
	var errs []error
	for _, cg := range h.cgroups {
		if err := setFrozen(cg, false); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("thaw %s: %w", cg, err))
		}
	}
	if len(errs) == 0 && len(h.cgroups) > 0 {
		h.d.st.Frozen = slices.DeleteFunc(h.d.st.Frozen, func(cg string) bool { return slices.Contains(h.cgroups, cg) })
		if err := h.d.saveState(); err != nil {
			errs = append(errs, fmt.Errorf("save state: %w", err))
		}
	}
	for _, f := range h.locks {
		f.Close() // drops the flock
	}
	h.locks = nil
	return held, errors.Join(errs...)
}

// thawLeftovers thaws the cgroups an interrupted hold left frozen. Callers hold d.mu.
func (d *Driver) thawLeftovers() {
	if len(d.st.Frozen) == 0 {
		return
	}
	var left []string
	for _, cg := range d.st.Frozen {
		if err := thawUnlessHeld(cg); err != nil {
			d.cfg.Logger.Printf("thaw %s, left frozen by an interrupted group cut: %v", cg, err)
			left = append(left, cg)
			continue
		}
		d.cfg.Logger.Printf("thawed %s, left frozen by an interrupted group cut", cg)
	}
	d.st.Frozen = left
	if err := d.saveState(); err != nil {
		d.cfg.Logger.Printf("save state: %v", err)
	}
}

// thawUnlessHeld thaws a cgroup unless another driver holds it now (its flock is taken: that
// driver thaws it). A gone cgroup is done.
func thawUnlessHeld(cg string) error {
	f, err := os.Open(cg)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		return err
	}
	err = setFrozen(cg, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writerCgroups lists the cgroups of the pods that have any of vols published, sorted. A volume
// published where the driver cannot tell the pod fails the cut: the spec wants a write-order
// consistent group or an error. Callers hold d.mu.
func (d *Driver) writerCgroups(vols []*volume) ([]string, error) {
	var out []string
	for _, v := range vols {
		for _, target := range sortedKeys(v.Published) {
			cg, err := d.podCgroup(v, target)
			if err != nil {
				return nil, errf(codes.FailedPrecondition, "volume %s is published at %s: %v; the group cannot be cut write-order consistent", v.ID, target, err)
			}
			if cg != "" && !slices.Contains(out, cg) {
				out = append(out, cg)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// podCgroup is the cgroup of the pod a target was published for, "" if that pod has no cgroup
// (no process) any more.
func (d *Driver) podCgroup(v *volume, target string) (string, error) {
	uid, ok := podOfTarget(target)
	if !ok {
		return "", errors.New("not a kubelet pod path, so the driver cannot tell which pod writes to it")
	}
	n := d.node(v.PublishedOn[target])
	if n == nil {
		return "", fmt.Errorf("the node it was published on (%q) is not known", v.PublishedOn[target])
	}
	if n.CgroupRoot == "" {
		return "", fmt.Errorf("node %s has no cgroup root configured (--node ...,cgroup-root=), so its pods cannot be frozen", n.ID)
	}
	fs, err := freezerRoot(d.cfg.Cgroups)
	if err != nil {
		return "", err
	}
	kubepods := filepath.Join(fs, n.CgroupRoot, "kubepods")
	if _, err := os.Stat(kubepods); err != nil {
		return "", fmt.Errorf("node %s: no pod cgroups at %s (is its cgroup root %s right?): %v", n.ID, kubepods, n.CgroupRoot, err)
	}
	for _, qos := range []string{"", "burstable", "besteffort"} {
		p := filepath.Join(kubepods, qos, "pod"+uid)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}

// podOfTarget is the pod UID in a kubelet publish path: <root>/pods/<uid>/volumes/... (mount) or
// <root>/plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid> (block).
func podOfTarget(target string) (string, bool) {
	parts := strings.Split(filepath.Clean(target), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "pods" && parts[i+2] == "volumes" && parts[i+1] != "" {
			return parts[i+1], true
		}
	}
	if n := len(parts); n >= 4 && parts[n-4] == "volumeDevices" && parts[n-3] == "publish" && parts[n-1] != "" {
		return parts[n-1], true
	}
	return "", false
}

// freezerRoot is the hierarchy whose cgroups can be frozen under the cgroup filesystem base:
// base itself on cgroup v2 (the unified hierarchy), base/freezer on v1.
func freezerRoot(base string) (string, error) {
	if base == "" {
		base = "/sys/fs/cgroup"
	}
	if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err == nil {
		return base, nil
	}
	if _, err := os.Stat(filepath.Join(base, "freezer", "cgroup.procs")); err == nil {
		return filepath.Join(base, "freezer"), nil
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy nor v1 freezer under %s: pods cannot be frozen", base)
}

// setFrozen freezes or thaws a cgroup (v1: freezer.state, v2: cgroup.freeze).
func setFrozen(cg string, frozen bool) error {
	v1, v2 := "THAWED", "0"
	if frozen {
		v1, v2 = "FROZEN", "1"
	}
	if _, err := os.Stat(cg); err != nil {
		return err // gone: its pod ended
	}
	if _, err := os.Stat(filepath.Join(cg, "freezer.state")); err == nil {
		return os.WriteFile(filepath.Join(cg, "freezer.state"), []byte(v1), 0)
	}
	return os.WriteFile(filepath.Join(cg, "cgroup.freeze"), []byte(v2), 0)
}

// isFrozen reports whether every task of a cgroup (and its children) is frozen.
func isFrozen(cg string) (bool, error) {
	if _, err := os.Stat(filepath.Join(cg, "freezer.state")); err == nil {
		b, err := os.ReadFile(filepath.Join(cg, "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN", err
	}
	b, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "frozen 1" {
			return true, nil
		}
	}
	return false, nil
}

// waitFrozen polls until every cgroup is frozen (the v1 freezer has no notification).
func waitFrozen(ctx context.Context, cgroups []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for _, cg := range cgroups {
		for {
			ok, err := isFrozen(cg)
			if err != nil {
				return fmt.Errorf("state of cgroup %s: %w", cg, err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the tasks of cgroup %s did not stop within %s (a task stuck in the kernel?)", cg, timeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 50*time.Millisecond)
		}
	}
	return nil
}
