// Package schedule writes the optional in-cluster schedule that `kubectl pvbackup schedule print`
// prints: a CronJob that runs the plugin from the mover image (create --generate-name, then
// prune), its ServiceAccount with the least rights those runs need (internal/doctor's Rights), and
// no secret: the password and the bucket's credentials come from a Secret the user creates. It
// only builds objects and text; nothing is applied.
package schedule

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // --time-zone is checked on machines without a zone database too

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
)

// Labels and annotations the printed objects carry. LabelSchedule marks every object of a
// schedule (doctor finds the CronJobs by it) and every backup it makes (its prune only decides on
// those); the annotations tell doctor what the ServiceAccount must be allowed to do.
const (
	LabelSchedule         = doctor.ScheduleLabel
	AnnotationNamespaces  = doctor.ScheduleNamespacesAnnot // backed-up namespaces, "*" for cluster-wide rights
	AnnotationNeeds       = doctor.ScheduleNeedsAnnot      // doctor needs: resources, volumes, ...
	AnnotationToolVersion = "pvbackup.io/version"
	// BinaryPath is the plugin in the mover image (hack/image).
	BinaryPath = "/usr/local/bin/kubectl-pvbackup"
	// UID is the mover image's user (hack/image).
	UID = 65532
	// CredentialsDir is where the Secret is mounted, for credentials that are files.
	CredentialsDir = "/etc/pvbackup"
	// GCPCredentialsKey is the Secret key of a Google service account key (gs:// locations).
	GCPCredentialsKey = "gcp-credentials.json"
)

// maxCronJobName is the longest CronJob name: its Jobs get an 11-character suffix.
const maxCronJobName = 52

// Config is one schedule.
type Config struct {
	Name      string // the CronJob's name, and the schedule's
	Namespace string // of the CronJob, its ServiceAccount and the Secret
	Cron      string // the CronJob's schedule ("0 2 * * *")
	TimeZone  string // the CronJob's timeZone ("" the controller's, usually UTC)

	Location   string // where the backups go, as the runs reach it (holds no credential: store.Parse refuses those)
	Image      string // the mover image: it holds the plugin
	PullPolicy corev1.PullPolicy
	Secret     string // the user's Secret: PVBACKUP_PASSWORD and the bucket's credentials
	// PullSecret, in Namespace, is a docker-registry Secret (--mover-pull-secret): the CronJob's
	// pod pulls the mover image with it, and create reads it to copy it to the movers ("": none).
	PullSecret string

	// Namespaces are the backed-up namespaces: each gets a Role. ClusterWide puts those rights
	// in the ClusterRole instead (every namespace, or patterns resolved only at run time).
	Namespaces  []string
	ClusterWide bool
	// Needs are the doctor needs of create and prune ("resources", "volumes", ...);
	// ListEverything grants list on every resource type (not only in the namespaces):
	// cluster-scoped types are backed up whole.
	Needs          []string
	ListEverything bool

	CreateArgs []string // the plugin's arguments: "create", ...
	PruneArgs  []string // "prune", ... (nil: no prune)

	HistoryLimit int32         // successful and failed Jobs kept
	Deadline     time.Duration // activeDeadlineSeconds of each run
	// GCPCredentials mounts the Secret's GCPCredentialsKey and points
	// GOOGLE_APPLICATION_CREDENTIALS at it.
	GCPCredentials bool
	ToolVersion    string
}

// Label is the value of LabelSchedule: namespace.name, unique per cluster.
func (c Config) Label() string { return c.Namespace + "." + c.Name }

// ServiceAccount is the schedule's ServiceAccount.
func (c Config) ServiceAccount() string { return "pvbackup-" + c.Name }

// roleName names the Roles, ClusterRole and bindings (RBAC names may hold colons).
func (c Config) roleName() string { return "pvbackup-schedule:" + c.Namespace + ":" + c.Name }

// Validate checks the names, the cron expression and the time zone.
func (c Config) Validate() error {
	if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 || len(c.Name) > maxCronJobName {
		return fmt.Errorf("schedule name %q: a CronJob name of at most %d lower-case letters, digits and '-' (%s)", c.Name, maxCronJobName, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q of the CronJob: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(c.Label()); len(errs) > 0 {
		return fmt.Errorf("schedule %s in namespace %s: the label %s=%s is too long (%s): choose a shorter name", c.Name, c.Namespace, LabelSchedule, c.Label(), strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(c.Secret); len(errs) > 0 {
		return fmt.Errorf("--secret %q: %s", c.Secret, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(c.PullSecret); c.PullSecret != "" && len(errs) > 0 {
		return fmt.Errorf("--mover-pull-secret %q: %s", c.PullSecret, strings.Join(errs, "; "))
	}
	if err := ValidateCron(c.Cron); err != nil {
		return err
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil || strings.EqualFold(c.TimeZone, "local") {
			return fmt.Errorf("--time-zone %q: not a time zone of the IANA database (e.g. Europe/Paris, UTC)", c.TimeZone)
		}
	}
	if c.HistoryLimit < 0 || c.Deadline <= 0 {
		return fmt.Errorf("--history-limit must be 0 or more and --deadline positive")
	}
	if len(c.Namespaces) == 0 && !c.ClusterWide {
		return fmt.Errorf("schedule %s backs up no namespace", c.Name)
	}
	return nil
}

// ValidateCron checks a CronJob schedule as the CronJob controller reads it: five fields or a
// macro (@daily), without a TZ= prefix (use --time-zone).
func ValidateCron(spec string) error {
	if strings.Contains(spec, "TZ=") {
		return fmt.Errorf("--cron %q: give the zone with --time-zone, not TZ= in the schedule (the API refuses it)", spec)
	}
	if _, err := cron.ParseStandard(spec); err != nil {
		return fmt.Errorf("--cron %q: %v (five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\", or @daily)", spec, err)
	}
	return nil
}
