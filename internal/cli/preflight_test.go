package cli

import (
	"reflect"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// The restore's plan (which claims its movers fill: the engine's rule) becomes doctor's: the
// namespaces the movers run in, each class here with the one it had; a claim without a class
// names neither.
func TestDoctorRestorePlan(t *testing.T) {
	got := doctorRestorePlan(restore.PreflightPlan{Volumes: []restore.PlannedVolume{
		{Namespace: "stage", PVC: "db", StorageClass: "cheap", BackedUpClass: "fast"},
		{Namespace: "blog", PVC: "data", StorageClass: "slow", BackedUpClass: "slow"},
		{Namespace: "stage", PVC: "cache", StorageClass: "slow", BackedUpClass: "slow"},
		{Namespace: "bare", PVC: "x"},
	}})
	want := doctor.RestorePlan{Namespaces: []string{"blog", "stage"}, StorageClasses: map[string]string{"cheap": "fast", "slow": "slow"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan %+v, want %+v", got, want)
	}
}
