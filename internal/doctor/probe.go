package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// ProbePrefix starts the names of the probe's namespaces.
const ProbePrefix = "pvb-doctor-"

// probe runs, in a temporary namespace, per StorageClass: a PVC, a mover that writes a file into
// it and reaches the location, a VolumeSnapshot, a PVC restored from it and a mover that reads
// the file back. Each step is timed and bounded by cfg.Timeout; a class stops at its first
// failure. The namespace and everything in it are deleted afterwards, also when ctx is cancelled.
func probe(ctx context.Context, d *Deps, cfg *Config, skip map[string]string) []Result {
	classes := cfg.StorageClasses
	if len(classes) == 0 {
		if def := defaultClass(ctx, d); def != "" {
			classes = []string{def}
		}
	}
	if len(classes) == 0 {
		return []Result{warn("probe", "no StorageClass to probe: none given and no default", "pass --storage-class")}
	}
	if cfg.MoverErr != nil {
		return []Result{fail("probe", "no mover can run: "+cfg.MoverErr.Error(), "")}
	}
	id := volumes.NewRunID()
	p := &prober{d: d, cfg: cfg, id: id, ns: ProbePrefix + id}
	labels := map[string]string{volumes.LabelManagedBy: volumes.ManagedBy, volumes.LabelBackup: p.backup(), volumes.LabelOperation: "doctor"}
	var out []Result
	// The progress line names the namespace: what a user who presses Ctrl-C twice has to look for.
	created := p.stepAs(ctx, &out, "probe: namespace", "probe: namespace "+p.ns, func(ctx context.Context) (string, error) {
		_, err := d.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.ns, Labels: labels}}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("create namespace %s: %w", p.ns, err)
		}
		return "namespace " + p.ns + " (labelled " + volumes.Selector(p.backup()) + ": `kubectl pvbackup cleanup` finds it)", nil
	})
	if !created {
		return out
	}
	if cfg.Mover.ServiceAccount != "" && len(cfg.Namespaces) > 0 && cfg.Mover.Location != "" {
		p.step(ctx, &out, "probe: mover identity", p.reachAs)
	}
	var todo []string
	// The classes are probed once the probe's movers have their credentials (a --mover-secret
	// that cannot be copied fails that step and probes nothing).
	if cfg.Mover.Secret == "" || p.step(ctx, &out, "probe: mover secret", p.copySecret) {
		for _, c := range classes {
			if why, bad := skip[c]; bad {
				out = append(out, fail("probe "+c, "not probed: "+why, "see the storage class check"))
				continue
			}
			todo = append(todo, c)
		}
		out = append(out, forEach(indexes(len(todo)), 2, func(i int) []Result { return p.class(ctx, todo[i], i) })...)
	}
	// Cleanup runs whatever happened to ctx (Ctrl-C): nothing is left behind.
	cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
	defer cancel()
	p.step(cctx, &out, "probe: cleanup", func(ctx context.Context) (string, error) { return p.cleanup(ctx, todo) })
	return out
}

type prober struct {
	d   *Deps
	cfg *Config
	id  string
	ns  string
}

func (p *prober) backup() string { return "doctor-" + p.id }

// copySecret brings --mover-secret into the probe's namespace: the user keeps it in the
// application namespaces, where movers run; the probe's movers run in a namespace of their own.
// The copy goes with that namespace.
func (p *prober) copySecret(ctx context.Context) (string, error) {
	name := p.cfg.Mover.Secret
	for _, ns := range p.cfg.Namespaces {
		src, err := p.d.Kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read --mover-secret %s/%s: %w", ns, name, err)
		}
		cp := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.ns, Labels: map[string]string{volumes.LabelManagedBy: volumes.ManagedBy, volumes.LabelBackup: p.backup()}},
			Type: src.Type, Data: src.Data}
		if _, err := p.d.Kube.CoreV1().Secrets(p.ns).Create(ctx, cp, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("copy --mover-secret %s/%s into %s: %w", ns, name, p.ns, err)
		}
		return fmt.Sprintf("Secret %s/%s copied into %s for the probe's movers", ns, name, p.ns), nil
	}
	return "", fmt.Errorf("--mover-secret %s is in none of the namespaces in scope (%s): the probe copies it from there into its own namespace; name one that has it with -n", name, strings.Join(p.cfg.Namespaces, ", "))
}

// step runs one timed step bounded by cfg.Timeout and records its result.
func (p *prober) step(ctx context.Context, out *[]Result, name string, fn func(context.Context) (string, error)) bool {
	return p.stepAs(ctx, out, name, name, fn)
}

// stepAs is step with its own progress line.
func (p *prober) stepAs(ctx context.Context, out *[]Result, name, progress string, fn func(context.Context) (string, error)) bool {
	if p.d.Progress != nil {
		p.d.Progress(progress)
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	detail, err := fn(sctx)
	r := Result{Check: name, Status: OK, Detail: detail, Seconds: time.Since(t0).Seconds()}
	if err != nil {
		if sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("%w (no result within --timeout %s)", err, p.cfg.Timeout)
		}
		r.Status, r.Detail, r.Fix = Fail, err.Error(), probeFix(err.Error())
	}
	*out = append(*out, r)
	return err == nil
}

func (p *prober) task(class string, i int) volumes.Task {
	return volumes.Task{Backup: p.backup(), Op: volumes.OpProbe, Namespace: p.ns, SourceNamespace: p.ns, PVC: fmt.Sprintf("probe-%d", i), Run: p.id}
}

func (p *prober) engine() *volumes.Prober {
	mc := p.cfg.Mover
	if mc.ServiceAccount != "" {
		// The ServiceAccount lives in the application namespaces (and its cloud role trusts it
		// there): the classes' movers run in the probe's namespace under its default account and
		// only write into their volumes; the identity step reaches the location under it.
		mc.ServiceAccount, mc.Location, mc.Env, mc.Files = "", "", nil, nil
	}
	return p.engineFor(mc)
}

func (p *prober) engineFor(mc volumes.MoverConfig) *volumes.Prober {
	mc.RepoPassword = p.cfg.repoKey
	mc.ActiveDeadline = p.cfg.Timeout
	ctl := 30 * time.Second
	if p.cfg.Timeout < ctl {
		ctl = p.cfg.Timeout
	}
	return volumes.NewProber(volumes.Deps{Kube: p.d.Kube, Snap: p.d.Snap, Discovery: p.d.Discovery},
		volumes.Config{Backup: p.backup(), Mover: mc, Timeout: p.cfg.Timeout, ControllerTimeout: ctl, RunID: p.id})
}

// class probes one StorageClass.
func (p *prober) class(ctx context.Context, class string, i int) []Result {
	var out []Result
	name := func(s string) string { return "probe " + class + ": " + s }
	t := p.task(class, i)
	eng := p.engine()
	sc, err := p.d.Kube.StorageV1().StorageClasses().Get(ctx, class, metav1.GetOptions{})
	if err != nil {
		return []Result{fail(name("storage class"), err.Error(), "")}
	}
	if !p.step(ctx, &out, name("PVC"), func(ctx context.Context) (string, error) { return p.claim(ctx, eng, t, sc) }) {
		return out
	}
	t.ProbeToken = "pvbackup-probe-" + volumes.NewRunID()
	if !p.step(ctx, &out, name("mover writes and reaches the location"), func(ctx context.Context) (string, error) {
		if _, err := eng.Mover(ctx, t, t.PVC); err != nil {
			return "", err
		}
		if p.cfg.Mover.Location == "" {
			return fmt.Sprintf("image %s wrote into the volume (no location given: not reached)", p.cfg.Mover.Image), nil
		}
		if p.cfg.Mover.ServiceAccount != "" {
			return fmt.Sprintf("image %s wrote into the volume (the location is reached under the movers' ServiceAccount: see the identity step)", p.cfg.Mover.Image), nil
		}
		return fmt.Sprintf("image %s wrote into the volume, and wrote and deleted a marker in %s from inside the cluster", p.cfg.Mover.Image, store.Redact(p.cfg.Mover.Location)), nil
	}) {
		return out
	}
	facts, err := volumes.ReadFacts(ctx, p.d.Discovery, p.d.Snap, nil, nil)
	if err == nil && facts.ClassesErr != nil {
		err = facts.ClassesErr
	}
	if err != nil {
		return append(out, fail(name("snapshot"), err.Error(), ""))
	}
	snapClass, why, err := volumes.ChooseClass(sc.Provisioner, p.cfg.SnapshotClasses, facts)
	if err != nil || !facts.SnapshotAPI {
		reason := "no snapshot API"
		if err != nil {
			reason = err.Error()
		}
		return append(out, warn(name("snapshot"), "not probed: "+reason+": auto backs up volumes of "+class+" with fs", ""))
	}
	var restoreSize *resource.Quantity
	if !p.step(ctx, &out, name("snapshot"), func(ctx context.Context) (string, error) {
		vs, err := eng.Snapshot(ctx, t, snapClass.Name)
		if err != nil {
			return "", err
		}
		restoreSize = vs.Status.RestoreSize
		return fmt.Sprintf("VolumeSnapshot of class %s (%s) ready", snapClass.Name, why), nil
	}) {
		return out
	}
	p.step(ctx, &out, name("restore from the snapshot"), func(ctx context.Context) (string, error) {
		return p.restore(ctx, eng, t, restoreSize)
	})
	return out
}

// claim creates the probe's PVC and waits until it is bound (a WaitForFirstConsumer class binds
// when the mover starts).
func (p *prober) claim(ctx context.Context, eng *volumes.Prober, t volumes.Task, sc *storagev1.StorageClass) (string, error) {
	size, err := resource.ParseQuantity(p.cfg.ProbeSize)
	if err != nil {
		return "", fmt.Errorf("--probe-size %q: %w", p.cfg.ProbeSize, err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: t.PVC, Namespace: t.Namespace, Labels: t.Labels()},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(sc.Name),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if _, err := p.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create PVC %s/%s: %w", t.Namespace, t.PVC, err)
	}
	if sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		return fmt.Sprintf("PVC %s of %s created (WaitForFirstConsumer: it binds when the mover starts)", t.PVC, p.cfg.ProbeSize), nil
	}
	bound, err := eng.WaitBound(ctx, t.Namespace, t.PVC)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("PVC %s of %s bound to %s", t.PVC, p.cfg.ProbeSize, bound.Spec.VolumeName), nil
}

// restore creates a PVC from the snapshot and has a mover read the file back.
func (p *prober) restore(ctx context.Context, eng *volumes.Prober, t volumes.Task, size *resource.Quantity) (string, error) {
	src, err := p.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Get(ctx, t.PVC, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get PVC %s/%s: %w", t.Namespace, t.PVC, err)
	}
	restored := t.TempPVCSpec(src, size, nil)
	if _, err := p.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Create(ctx, restored, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create PVC %s/%s from VolumeSnapshot %s: %w", t.Namespace, restored.Name, t.SnapshotName(), err)
	}
	rt := t
	rt.PVC = restored.Name
	rt.ProbeVerify = true
	if _, err := eng.Mover(ctx, rt, restored.Name); err != nil {
		return "", err
	}
	return "PVC " + restored.Name + " restored from the snapshot holds the file the first mover wrote", nil
}

// cleanup deletes the probe's snapshots and claims (their storage too, whatever the policies),
// then the namespace, and waits until it is gone.
func (p *prober) cleanup(ctx context.Context, classes []string) (string, error) {
	var objs []volumes.Object
	for i := range classes {
		t := p.task(classes[i], i)
		objs = append(objs,
			volumes.Object{Kind: "PersistentVolumeClaim", Namespace: p.ns, Name: t.TempPVCName()},
			t.SnapshotObject(),
			volumes.Object{Kind: "PersistentVolumeClaim", Namespace: p.ns, Name: t.PVC})
	}
	objs = append(objs, volumes.Object{Kind: "Namespace", Name: p.ns})
	if err := volumes.Delete(ctx, p.d.Kube, p.d.Snap, objs); err != nil {
		return "", fmt.Errorf("%w: run `kubectl pvbackup cleanup --backup %s`", err, p.backup())
	}
	if err := p.waitGone(ctx); err != nil {
		return "", fmt.Errorf("namespace %s is still being deleted: %v (`kubectl pvbackup cleanup --backup %s` finds what is left)", p.ns, err, p.backup())
	}
	return "namespace " + p.ns + " and everything in it deleted", nil
}

func (p *prober) waitGone(ctx context.Context) error {
	lw := kube.ListWatch(p.d.Kube.CoreV1().Namespaces(), p.d.Kube, kube.Named(p.ns))
	return kube.Until(ctx, lw, &corev1.Namespace{}, func(s cache.Store) (bool, error) {
		for _, o := range s.List() {
			if o.(*corev1.Namespace).Name == p.ns {
				return false, nil
			}
		}
		return true, nil
	}, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Namespace)
		return ev.Type == watch.Deleted && ok && n.Name == p.ns, nil
	})
}

func defaultClass(ctx context.Context, d *Deps) string {
	list, err := d.Kube.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, sc := range list.Items {
		if sc.Annotations[annotationDefaultSC] == "true" {
			return sc.Name
		}
	}
	return ""
}

// probeFix says what to do about a probe step's error.
func probeFix(msg string) string {
	switch {
	case strings.Contains(msg, "ErrImagePull") && (strings.Contains(msg, "401") || strings.Contains(strings.ToLower(msg), "unauthorized") || strings.Contains(msg, "denied")):
		return "the registry refused the pull's credentials: give a docker-registry Secret with --mover-pull-secret [NAMESPACE/]NAME, or add it to the imagePullSecrets of the namespace's ServiceAccount"
	case strings.Contains(msg, "ImagePullBackOff") || strings.Contains(msg, "ErrImage") || strings.Contains(msg, "InvalidImageName"):
		return "the nodes cannot pull --mover-image: check its name, mirror it to a registry the nodes reach (or load it), and --mover-pull-policy"
	case strings.Contains(msg, "from inside the cluster"):
		return "pods cannot reach the backup location as the plugin does: pass --mover-location with an endpoint pods reach (an in-cluster Service, the bucket's public endpoint) and check NetworkPolicies and egress"
	case strings.Contains(msg, "snapshot controller"):
		return "start the snapshot controller, or back up with --volumes=fs"
	case strings.Contains(msg, "ProvisioningFailed") || strings.Contains(msg, "waiting until it is bound"):
		return "the StorageClass cannot provision volumes: see its driver's logs"
	case strings.Contains(msg, "forbidden"):
		return "see the rights and Pod Security checks"
	}
	return ""
}
