package driver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

func createGroup(ctx context.Context, d *Driver, name string, ids ...string) (*csi.VolumeGroupSnapshot, error) {
	resp, err := d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: name, SourceVolumeIds: ids})
	return resp.GetGroupSnapshot(), err
}

// The GroupController's contract: one ready member snapshot per volume (block and filesystem alike),
// carrying the group's ID; the same name and volumes is the same group, other volumes are refused;
// members restore as any snapshot; Get and Delete check the member list; deleting the group
// deletes its members; the node-local driver offers no group snapshots.
func TestGroupSnapshotContract(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	fs := createVolume(t, d, "fs", 16<<20, nil)
	if err := os.WriteFile(filepath.Join(d.volumePath(fs.VolumeId), "token"), []byte("group"), 0o600); err != nil {
		t.Fatal(err)
	}
	blk := createBlock(t, d, "blk", 16<<20, nil)
	other := createVolume(t, d, "other", 16<<20, nil)

	g, err := createGroup(ctx, d, "g", blk.VolumeId, fs.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	if !g.ReadyToUse || len(g.Snapshots) != 2 || g.GroupSnapshotId == "" {
		t.Fatalf("group %v: want ready with two snapshots", g)
	}
	var fsSnap string
	for _, s := range g.Snapshots {
		if s.GroupSnapshotId != g.GroupSnapshotId || !s.ReadyToUse {
			t.Errorf("member %v: want ready, in group %s", s, g.GroupSnapshotId)
		}
		if s.SourceVolumeId == fs.VolumeId {
			fsSnap = s.SnapshotId
		}
	}
	again, err := createGroup(ctx, d, "g", fs.VolumeId, blk.VolumeId)
	if err != nil || again.GroupSnapshotId != g.GroupSnapshotId {
		t.Fatalf("the same request again: %v, %v; want group %s", again, err, g.GroupSnapshotId)
	}
	_, err = createGroup(ctx, d, "g", fs.VolumeId, other.VolumeId)
	wantCode(t, err, codes.AlreadyExists, "exists with source volumes")
	_, err = createGroup(ctx, d, "twice", fs.VolumeId, fs.VolumeId)
	wantCode(t, err, codes.InvalidArgument, "twice")
	_, err = d.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "bad", SourceVolumeIds: []string{fs.VolumeId}, Parameters: map[string]string{"fail": "array on fire"}})
	wantCode(t, err, codes.Internal, "array on fire")

	list, err := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: fsSnap})
	if err != nil || len(list.Entries) != 1 || list.Entries[0].Snapshot.GroupSnapshotId != g.GroupSnapshotId {
		t.Fatalf("ListSnapshots(%s) = %v, %v: want the member with its group", fsSnap, list, err)
	}
	r := createVolume(t, d, "restored", 0, snapSource(fsSnap))
	if b, err := os.ReadFile(filepath.Join(d.volumePath(r.VolumeId), "token")); err != nil || string(b) != "group" {
		t.Errorf("volume from a member snapshot holds %q, %v", b, err)
	}

	_, err = d.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshotId, SnapshotIds: []string{"snap-unknown"}})
	wantCode(t, err, codes.InvalidArgument, "not a member")
	_, err = d.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: "group-unknown"})
	wantCode(t, err, codes.NotFound, "not found")
	_, err = d.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshotId, SnapshotIds: []string{"snap-unknown"}})
	wantCode(t, err, codes.InvalidArgument, "not a member")
	ids := []string{g.Snapshots[0].SnapshotId, g.Snapshots[1].SnapshotId}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := d.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: g.GroupSnapshotId, SnapshotIds: ids}); err != nil {
			t.Fatal(err)
		}
	}
	if list, _ := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{}); len(list.GetEntries()) != 0 {
		t.Errorf("snapshots left after the group was deleted: %v", list.Entries)
	}
	if files, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "snapshots", "*")); len(files) != 0 {
		t.Errorf("snapshot files left after the group was deleted: %v", files)
	}

	caps, _ := newTypedDriver(t, TypeLocal, 1<<30).GetPluginCapabilities(ctx, nil)
	for _, c := range caps.Capabilities {
		if c.GetService().GetType() == csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE {
			t.Error("the local driver offers the GroupController service")
		}
	}
}

// A group cut refuses, rather than cuts inconsistently, a member published where the driver
// cannot tell the pod (not a kubelet path) or cannot freeze it (no cgroup root for the node).
func TestGroupSnapshotRefusesWritersItCannotHold(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	ns := &nodeServer{d: d, node: &d.cfg.Nodes[0]}
	a := createVolume(t, d, "a", 16<<20, nil)
	b := createVolume(t, d, "b", 16<<20, nil)
	publish := func(vol, target string) {
		t.Helper()
		if _, err := ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vol, TargetPath: target, VolumeCapability: mountCap[0]}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol, TargetPath: target})
		})
	}
	publish(a.VolumeId, filepath.Join(t.TempDir(), "somewhere"))
	_, err := createGroup(ctx, d, "g", a.VolumeId, b.VolumeId)
	wantCode(t, err, codes.FailedPrecondition, "not a kubelet pod path")

	publish(b.VolumeId, filepath.Join(t.TempDir(), "pods", "uid-1", "volumes", "kubernetes.io~csi", "pv", "mount"))
	_, err = createGroup(ctx, d, "g2", b.VolumeId)
	wantCode(t, err, codes.FailedPrecondition, "node a has no cgroup root configured")
}

// hierarchy is a cgroup filesystem the tests can freeze in: the cgroup base a driver is given
// (Config.Cgroups) and the hierarchy freezerRoot finds under it.
type hierarchy struct{ name, base, root string }

// hierarchies are those of this machine: the v1 freezer and the v2 unified hierarchy (on a
// hybrid host, /sys/fs/cgroup/unified).
func hierarchies(t *testing.T) []hierarchy {
	var out []hierarchy
	for _, c := range []struct{ name, base string }{{"v1", "/sys/fs/cgroup"}, {"v2", "/sys/fs/cgroup"}, {"v2", "/sys/fs/cgroup/unified"}} {
		root, err := freezerRoot(c.base)
		if err != nil || (c.name == "v2") != (root == c.base) {
			continue
		}
		out = append(out, hierarchy{c.name, c.base, root})
	}
	if len(out) == 0 {
		t.Fatal("no cgroup v1 freezer nor v2 hierarchy on this machine: group cuts cannot freeze pods here")
	}
	return out
}

// fakePod is a pod as the kubelet lays it out: a cgroup <cgroup-root>/kubepods/besteffort/pod<uid>
// and the publish paths named after it.
type fakePod struct {
	uid, cgroupRoot, cgroup, kubelet string
}

func newFakePod(t *testing.T, h hierarchy) *fakePod {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	p := &fakePod{uid: "uid-" + hex.EncodeToString(b), cgroupRoot: "/pvbackup-csi-test-" + hex.EncodeToString(b) + "/a", kubelet: t.TempDir()}
	p.cgroup = filepath.Join(h.root, p.cgroupRoot, "kubepods", "besteffort", "pod"+p.uid)
	if err := os.MkdirAll(p.cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		setFrozen(p.cgroup, false)
		for dir := p.cgroup; dir != h.root; dir = filepath.Dir(dir) {
			os.Remove(dir)
		}
	})
	return p
}

func (p *fakePod) mountTarget(pv string) string {
	return filepath.Join(p.kubelet, "pods", p.uid, "volumes", "kubernetes.io~csi", pv, "mount")
}

func (p *fakePod) blockTarget(pv string) string {
	return filepath.Join(p.kubelet, "plugins", "kubernetes.io", "csi", "volumeDevices", "publish", pv, p.uid)
}

// start runs a shell script inside the pod's cgroup until the test ends.
func (p *fakePod) start(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec sh -c "$2"`, "sh", p.cgroup, script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		setFrozen(p.cgroup, false)
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// LockstepScript writes 1, 2, 3, ... as fast as it can, each number first as a line appended to
// file a, then as the first line of b (a file or a device, overwritten each time). Every state
// it passes through has a == b or a == b+1: a cut with b > a, or a > b+1, is one no instant had.
func LockstepScript(a, b string) string {
	return fmt.Sprintf(`i=0; while :; do i=$((i+1)); echo $i >> %s; echo $i > %s; done`, a, b)
}

// parseNumber is the number on the last complete line of an appended file, or on the first
// line of an overwritten one (first=true).
func parseNumber(b []byte, first bool) (int, error) {
	var line []byte
	if first {
		line, _, _ = bytes.Cut(b, []byte("\n"))
	} else {
		b = b[:bytes.LastIndexByte(b, '\n')+1] // a line being appended is not complete yet
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		line = lines[len(lines)-1]
	}
	return strconv.Atoi(string(line))
}

func lastNumber(t *testing.T, b []byte, first bool) int {
	t.Helper()
	n, err := parseNumber(b, first)
	if err != nil {
		t.Fatalf("no number in %.40q: %v", b, err)
	}
	return n
}

// snapshotNumbers reads the lockstep numbers from a filesystem member (file "seq" in the tar)
// and a block member (the image's first line) of the driver's snapshots.
func snapshotNumbers(t *testing.T, d *Driver, fsSnap, blkSnap string) (int, int) {
	t.Helper()
	dir := t.TempDir()
	if err := d.restoreSnapshot(d.st.Snapshots[fsSnap], dir); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(dir, "seq"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(d.snapshotPath(d.st.Snapshots[blkSnap]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 64)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return lastNumber(t, a, false), lastNumber(t, b, true)
}

// waitNumber waits until the number read by read exceeds n.
func waitNumber(t *testing.T, what string, n int, read func() int) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got := read(); got > n {
			return got
		}
	}
	t.Fatalf("%s did not pass %d within 10 s: the writer is stuck (still frozen?)", what, n)
	return 0
}

// A group cut freezes the writer of its members: a lockstep writer (a number appended to a file
// on a filesystem volume, then written to a block volume's device) is cut at a state it passed
// through, on each cgroup hierarchy of the machine; it runs on afterwards (thawed). Two single
// snapshots of the same volumes, cut one after the other, show a state that never was.
func TestGroupCutHoldsWriters(t *testing.T) {
	for _, h := range hierarchies(t) {
		t.Run(h.name, func(t *testing.T) { testGroupCutHoldsWriters(t, h) })
	}
}

func testGroupCutHoldsWriters(t *testing.T, h hierarchy) {
	pod := newFakePod(t, h)
	d, err := New(Config{Name: "test.csi.pvbackup.io", Type: TypeDir, DataDir: t.TempDir(), Capacity: 10 << 30, Cgroups: h.base,
		Nodes: []Node{{ID: "a", Endpoint: "unused", CgroupRoot: pod.cgroupRoot}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &nodeServer{d: d, node: &d.cfg.Nodes[0]}
	fs := createVolume(t, d, "fs", 16<<20, nil)
	blk := createBlock(t, d, "blk", 16<<20, nil)
	fsTarget, blkTarget := pod.mountTarget("pv-fs"), pod.blockTarget("pv-blk")
	for _, p := range []struct {
		vol, target string
		cap         *csi.VolumeCapability
	}{{fs.VolumeId, fsTarget, mountCap[0]}, {blk.VolumeId, blkTarget, blockCap[0]}} {
		if _, err := ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: p.vol, TargetPath: p.target, VolumeCapability: p.cap}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: p.vol, TargetPath: p.target})
		})
	}
	seq := filepath.Join(fsTarget, "seq")
	pod.start(t, LockstepScript(seq, blkTarget))
	liveA := func() int { b, _ := os.ReadFile(seq); n, _ := parseNumber(b, false); return n }
	liveB := func() int { n, _ := parseNumber(readAt(t, blkTarget, 64, 0), true); return n }
	waitNumber(t, "the writer", 100, liveA)

	g, err := createGroup(ctx, d, "lockstep", fs.VolumeId, blk.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	fsSnap, blkSnap := memberOf(g, fs.VolumeId), memberOf(g, blk.VolumeId)
	a, b := snapshotNumbers(t, d, fsSnap, blkSnap)
	t.Logf("%s: group cut at a=%d b=%d, writer held for %s", h.name, a, b, d.st.Groups[g.GroupSnapshotId].Held)
	if a != b && a != b+1 {
		t.Errorf("group cut: a=%d b=%d, a state the writer never passed through (want a == b or a == b+1)", a, b)
	}
	waitNumber(t, "the writer after the cut", a+100, liveA)

	s1, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "single-fs", SourceVolumeId: fs.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := snapshotNumbers(t, d, s1.Snapshot.SnapshotId, blkSnap)
	waitNumber(t, "the device", a1+1, liveB)
	s2, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "single-blk", SourceVolumeId: blk.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	_, b2 := snapshotNumbers(t, d, s1.Snapshot.SnapshotId, s2.Snapshot.SnapshotId)
	t.Logf("%s: single snapshots one after the other: a=%d b=%d", h.name, a1, b2)
	if b2 <= a1 {
		t.Errorf("single snapshots: a=%d b=%d, want b > a (the second cut later)", a1, b2)
	}
}

func memberOf(g *csi.VolumeGroupSnapshot, vol string) string {
	for _, s := range g.Snapshots {
		if s.SourceVolumeId == vol {
			return s.SnapshotId
		}
	}
	return ""
}

// A driver killed in the middle of a cut leaves pods frozen; started again, it thaws them.
func TestRestartThawsWhatAnInterruptedCutFroze(t *testing.T) {
	h := hierarchies(t)[0]
	pod := newFakePod(t, h)
	d := newTestDriver(t, 1<<30)
	d.st.Frozen = []string{pod.cgroup}
	if err := d.saveState(); err != nil {
		t.Fatal(err)
	}
	if err := setFrozen(pod.cgroup, true); err != nil {
		t.Fatal(err)
	}
	if _, err := New(d.cfg); err != nil {
		t.Fatal(err)
	}
	if ok, err := isFrozen(pod.cgroup); ok || err != nil {
		t.Errorf("%s frozen=%v (%v) after the driver started again, want thawed", pod.cgroup, ok, err)
	}
}
