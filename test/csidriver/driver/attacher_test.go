package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is an in-memory API server with what the attacher uses: VolumeAttachments (list, watch,
// merge patch of the object and its status, deletion held by finalizers), PVs and CSINodes (get).
type fakeAPI struct {
	mu       sync.Mutex
	rv       int
	vas      map[string]map[string]any
	objects  map[string]any // other objects by path
	watchers []chan []byte
	patches  map[string]int // patches per VolumeAttachment
}

func newFakeAPI(t *testing.T) (*fakeAPI, *API) {
	f := &fakeAPI{vas: map[string]map[string]any{}, objects: map[string]any{}, patches: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &API{Server: srv.URL, Client: srv.Client()}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "GET" && r.URL.Path == vaPath && r.URL.Query().Get("watch") == "1":
		f.serveWatch(w, r)
	case r.Method == "GET" && r.URL.Path == vaPath:
		f.mu.Lock()
		items := []any{}
		for _, va := range f.vas {
			items = append(items, va)
		}
		list := map[string]any{"metadata": map[string]any{"resourceVersion": fmt.Sprint(f.rv)}, "items": items}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(list)
	case r.Method == "PATCH" && strings.HasPrefix(r.URL.Path, vaPath+"/"):
		var patch map[string]any
		if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, vaPath+"/"), "/status")
		code, msg, obj := f.patch(name, patch)
		if code != 200 {
			http.Error(w, fmt.Sprintf(`{"message": %q}`, msg), code)
			return
		}
		w.Write(obj)
	case r.Method == "GET":
		f.mu.Lock()
		obj, ok := f.objects[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"message": "not found"}`, 404)
			return
		}
		json.NewEncoder(w).Encode(obj)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, 400)
	}
}

func (f *fakeAPI) serveWatch(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 100)
	f.mu.Lock()
	f.watchers = append(f.watchers, ch)
	f.mu.Unlock()
	w.(http.Flusher).Flush()
	timeout := time.After(time.Second)
	for {
		select {
		case b := <-ch:
			w.Write(b)
			w.(http.Flusher).Flush()
		case <-timeout:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// emit sends a watch event to the watchers. Callers hold f.mu.
func (f *fakeAPI) emit(typ string, obj any) {
	b, _ := json.Marshal(map[string]any{"type": typ, "object": obj})
	for _, ch := range f.watchers {
		select {
		case ch <- append(b, '\n'):
		default:
		}
	}
}

// patch applies a merge patch and returns the patched object.
func (f *fakeAPI) patch(name string, patch map[string]any) (int, string, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	va := f.vas[name]
	if va == nil {
		return 404, "not found", nil
	}
	f.patches[name]++
	meta := va["metadata"].(map[string]any)
	pm, _ := patch["metadata"].(map[string]any)
	if want, ok := pm["resourceVersion"]; ok && want != meta["resourceVersion"] {
		return 409, "conflict", nil
	}
	mergePatch(va, patch)
	f.rv++
	meta["resourceVersion"] = fmt.Sprint(f.rv)
	b, _ := json.Marshal(va)
	if meta["deletionTimestamp"] != nil && len(asList(meta["finalizers"])) == 0 {
		delete(f.vas, name)
		f.emit("DELETED", va)
		return 200, "", b
	}
	f.emit("MODIFIED", va)
	return 200, "", b
}

func asList(v any) []any { l, _ := v.([]any); return l }

// mergePatch applies a JSON merge patch (RFC 7386) to dst.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			mergePatch(dm, pv)
		default:
			dst[k] = v
		}
	}
}

// createVA makes a VolumeAttachment as the attach-detach controller does.
func (f *fakeAPI) createVA(name, attacher, node, pv string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	va := map[string]any{"metadata": map[string]any{"name": name, "resourceVersion": fmt.Sprint(f.rv)},
		"spec": map[string]any{"attacher": attacher, "nodeName": node, "source": map[string]any{"persistentVolumeName": pv}}}
	f.vas[name] = va
	f.emit("ADDED", va)
}

// deleteVA deletes a VolumeAttachment; its finalizers hold it until they are removed.
func (f *fakeAPI) deleteVA(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	va := f.vas[name]
	meta := va["metadata"].(map[string]any)
	if len(asList(meta["finalizers"])) == 0 {
		delete(f.vas, name)
		return
	}
	f.rv++
	meta["deletionTimestamp"], meta["resourceVersion"] = time.Now().UTC().Format(time.RFC3339), fmt.Sprint(f.rv)
	f.emit("MODIFIED", va)
}

// va returns a VolumeAttachment as the attacher reads it (nil once gone).
func (f *fakeAPI) va(name string) *volumeAttachment {
	f.mu.Lock()
	defer f.mu.Unlock()
	obj, ok := f.vas[name]
	if !ok {
		return nil
	}
	b, _ := json.Marshal(obj)
	var va volumeAttachment
	json.Unmarshal(b, &va)
	return &va
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The attacher answers VolumeAttachments as the external-attacher does: finalizer, attached and
// attachmentMetadata on success; attachError with the driver's reason for a second node; on
// deletion a detach, then the status cleared and the finalizer removed; a failed attach is retried.
func TestAttacherAnswersVolumeAttachments(t *testing.T) {
	d := newTypedDriver(t, TypeZonal, 10<<30)
	v, err := createIn(t, d, "v", nil, topo(d.topologyKey(), "zone-b"))
	if err != nil {
		t.Fatal(err)
	}
	f, api := newFakeAPI(t)
	f.objects["/api/v1/persistentvolumes/pv"] = map[string]any{"spec": map[string]any{"accessModes": []string{"ReadWriteOnce"},
		"csi": map[string]any{"driver": d.cfg.Name, "volumeHandle": v.VolumeId}}}
	for _, n := range []string{"b", "c"} {
		f.objects["/apis/storage.k8s.io/v1/csinodes/"+n] = map[string]any{"spec": map[string]any{"drivers": []any{map[string]any{"name": d.cfg.Name, "nodeID": n}}}}
	}
	a := NewAttacher(d, api)
	a.RetryInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	f.createVA("va-other", "other.csi.example.com", "b", "pv")
	f.createVA("va-b", d.cfg.Name, "b", "pv")
	waitFor(t, "va-b attached to b", func() bool {
		va := f.va("va-b")
		return va.Status.Attached && va.Status.AttachmentMetadata[PublishContextNode] == "b" && va.hasFinalizer("external-attacher/test-csi-pvbackup-io")
	})
	f.createVA("va-c", d.cfg.Name, "c", "pv")
	waitFor(t, "va-c refused", func() bool {
		va := f.va("va-c")
		return !va.Status.Attached && va.Status.AttachError != nil && strings.Contains(va.Status.AttachError.Message, "already attached to node b")
	})

	// A refusal is retried at the resyncs (every RetryInterval), not at once on the event its own
	// report makes: that would patch va-c in a tight loop.
	f.mu.Lock()
	before := f.patches["va-c"]
	f.mu.Unlock()
	time.Sleep(10 * a.RetryInterval)
	f.mu.Lock()
	retries := f.patches["va-c"] - before
	f.mu.Unlock()
	if retries > 20 {
		t.Fatalf("va-c was patched %d times in %s: the attacher retries on its own reports", retries, 10*a.RetryInterval)
	}

	f.deleteVA("va-b")
	waitFor(t, "va-b detached and gone", func() bool { return f.va("va-b") == nil })
	waitFor(t, "va-c attached after b let go", func() bool {
		va := f.va("va-c")
		return va.Status.Attached && va.Status.AttachError == nil
	})
	if va := f.va("va-other"); va.Status.Attached || len(va.Metadata.Finalizers) > 0 {
		t.Errorf("the attacher touched another driver's VolumeAttachment: %+v", va)
	}
}
