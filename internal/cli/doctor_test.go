package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
)

func TestDoctorExitCodes(t *testing.T) {
	for _, tc := range []struct {
		status doctor.Status
		want   int
	}{{doctor.OK, ExitOK}, {doctor.Warn, 2}, {doctor.Fail, 1}} {
		rep := &doctor.Report{Status: tc.status, Checks: []doctor.Result{{Check: "a", Status: tc.status}}}
		if got := ExitCodeOf(reportError(rep, context.Background())); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.status, got, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := ExitCodeOf(reportError(&doctor.Report{Status: doctor.Fail}, ctx)); got != ExitInterrupted {
		t.Errorf("interrupted: exit %d", got)
	}
}

func TestPrintReport(t *testing.T) {
	var b bytes.Buffer
	rep := &doctor.Report{Status: doctor.Fail, Seconds: 1.234, Checks: []doctor.Result{
		{Check: "snapshot controller", Status: doctor.OK, Detail: "Lease kube-system/snapshot-controller-leader held by node", Seconds: 0.012},
		{Check: "rights in shop", Status: doctor.Fail, Detail: "missing: create jobs.batch", Fix: "grant these rights", Seconds: 0.05},
	}}
	if err := printReport(&b, rep); err != nil {
		t.Fatal(err)
	}
	want := `CHECK                STATUS  TIME  DETAIL                                                     WHAT TO DO
snapshot controller  ok      10ms  Lease kube-system/snapshot-controller-leader held by node  -
rights in shop       fail    50ms  missing: create jobs.batch                                 grant these rights
1 ok, 0 warnings, 1 failed in 1.23s.
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(b.String(), "WHAT TO DO") {
		t.Error("no fix column")
	}
}
