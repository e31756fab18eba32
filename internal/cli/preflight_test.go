package cli

import (
	"reflect"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// The preflight of --data-only / --in-place checks where the movers of the named volumes run
// and the classes their claims get, not the whole backup's.
func TestDataRestorePlan(t *testing.T) {
	m := &catalog.Manifest{Volumes: []catalog.Volume{
		{Namespace: "shop", PVC: "db", StorageClass: "fast", KopiaSnapshot: "k1"},
		{Namespace: "shop", PVC: "cache", StorageClass: "slow", KopiaSnapshot: "k2"},
		{Namespace: "blog", PVC: "data", StorageClass: "slow", KopiaSnapshot: "k3"},
		{Namespace: "shop", PVC: "snap", StorageClass: "csi", VolumeSnapshot: "vs1"},
	}}
	for _, tc := range []struct {
		name    string
		cfg     restore.Config
		named   []string
		target  string
		inPlace bool
		want    doctor.RestorePlan
	}{
		{"one volume", restore.Config{}, []string{"shop/db"}, "", false,
			doctor.RestorePlan{Namespaces: []string{"shop"}, StorageClasses: map[string]string{"fast": "fast"}}},
		{"mapped namespace and class", restore.Config{NamespaceMapping: map[string]string{"shop": "stage"}, StorageClassMapping: map[string]string{"fast": "cheap"}},
			[]string{"shop/db", "blog/data"}, "", false,
			doctor.RestorePlan{Namespaces: []string{"blog", "stage"}, StorageClasses: map[string]string{"cheap": "fast", "slow": "slow"}}},
		{"target claim's namespace", restore.Config{}, []string{"shop/cache"}, "copy/cache2", false,
			doctor.RestorePlan{Namespaces: []string{"copy"}, StorageClasses: map[string]string{"slow": "slow"}}},
		{"kept snapshot: no mover for a new claim", restore.Config{}, []string{"shop/snap"}, "shop/new", false,
			doctor.RestorePlan{StorageClasses: map[string]string{}}},
		{"kept snapshot in place: a mover copies", restore.Config{}, []string{"shop/snap"}, "", true,
			doctor.RestorePlan{Namespaces: []string{"shop"}, StorageClasses: map[string]string{"csi": "csi"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dataRestorePlan(m, tc.cfg, tc.named, tc.target, tc.inPlace)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan %+v, want %+v", got, tc.want)
			}
		})
	}
}
