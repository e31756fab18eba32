package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// locationOptions is the backup location (--to / --from / PVBACKUP_LOCATION).
type locationOptions struct {
	URL string
}

func (o *locationOptions) addFlag(fs *pflag.FlagSet, name string) {
	fs.StringVar(&o.URL, name, "", "backup location URL: s3://bucket/prefix?region=..., gs://bucket/prefix, azblob://container/prefix, file:///dir (default $"+store.EnvLocation+")")
}

func (o *locationOptions) complete() {
	if o.URL == "" {
		o.URL = os.Getenv(store.EnvLocation)
	}
}

func (o *locationOptions) validate() error {
	_, _, err := store.Parse(o.URL)
	return err
}

func (o *locationOptions) open(ctx context.Context) (*catalog.Catalog, func(), error) {
	loc, err := store.Open(ctx, o.URL)
	if err != nil {
		return nil, nil, err
	}
	return catalog.New(loc), func() { _ = loc.Close() }, nil
}

// outputOptions is -o/--output.
type outputOptions struct {
	Format string
}

func (o *outputOptions) addFlag(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Format, "output", "o", "", "output format: json or yaml (default: text for people)")
}

func (o *outputOptions) validate() error {
	switch o.Format {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output=%q: use json or yaml", o.Format)
}

// print writes v as JSON or YAML. It is only called when a format was chosen.
func (o *outputOptions) print(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if o.Format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printEach writes the values each gives, as a JSON or YAML list, one value at a time: the same
// text print writes for the whole list, without holding it.
func (o *outputOptions) printEach(w io.Writer, each func(emit func(any) error) error) error {
	n := 0
	err := each(func(v any) error {
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		if o.Format == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
			// One item of a YAML list: "- " before the first line, two spaces before the others.
			b = append([]byte("- "), bytes.ReplaceAll(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"), []byte("\n  "))...)
			_, err = fmt.Fprintf(w, "%s\n", b)
		} else {
			sep := ",\n  "
			if n == 0 {
				sep = "[\n  "
			}
			_, err = fmt.Fprintf(w, "%s%s", sep, b)
		}
		n++
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case n == 0:
		_, err = fmt.Fprintln(w, "[]")
	case o.Format != "yaml":
		_, err = fmt.Fprint(w, "\n]\n")
	}
	return err
}

// reporter picks the progress output: JSON events for machine output, text otherwise.
func (o *outputOptions) reporter(ctx context.Context, streams genericiooptions.IOStreams) progress.Meter {
	if o.Format != "" {
		return progress.NewJSON(ctx, streams.ErrOut)
	}
	return progress.NewText(ctx, streams.ErrOut)
}

// passwordOptions is --password-file.
type passwordOptions struct {
	File string
}

// load reads the password, warning on w when the file is readable by others.
func (o *passwordOptions) load(w io.Writer) (string, error) {
	return loadPassword(o.File, w)
}

func loadPassword(file string, w io.Writer) (string, error) {
	p, err := password.Load(file)
	if err == nil {
		if warn := password.FileWarning(file); warn != "" {
			fmt.Fprintln(w, warn)
		}
	}
	return p, err
}

func (o *passwordOptions) addFlag(fs *pflag.FlagSet) {
	fs.StringVar(&o.File, "password-file", "", "file holding the repository password (default $PVBACKUP_PASSWORD; there is no default password)")
}

// locationKeys opens the location's keyring once, when first asked, with the user's password:
// the one place that turns the password into the keys of the namespace repositories and of the
// resources archives (internal/keyring). Commands that never touch volume data or an archive
// never load the password.
type locationKeys struct {
	open func() (*keyring.Keyring, error)
}

// A password file others can read is warned about on errOut, whatever the command.
func newLocationKeys(ctx context.Context, loc *store.Location, passwordFile string, errOut io.Writer) *locationKeys {
	return &locationKeys{open: sync.OnceValues(func() (*keyring.Keyring, error) {
		pw, err := loadPassword(passwordFile, errOut)
		if err != nil {
			return nil, err
		}
		kr, err := keyring.Open(ctx, loc, pw)
		if err == nil && kr.Damage != "" {
			fmt.Fprintln(errOut, "warning: "+printable.Lines(kr.Damage)+": "+keyHint)
		}
		return kr, err
	})}
}

// keyHint says how to mend a missing or damaged key file.
const keyHint = "put it back with `kubectl pvbackup repo import-key FILE` (your export), or let the next `create` write a missing one back from the copy"

// repairKey writes a missing key file back from the copy the keyring was opened with (create),
// and says so; a damaged one is only reported.
func repairKey(ctx context.Context, loc *store.Location, kr *keyring.Keyring, errOut io.Writer) error {
	if kr.Damage == "" {
		return nil
	}
	wrote, err := kr.Repair(ctx, loc)
	if err != nil {
		return err
	}
	if wrote {
		fmt.Fprintf(errOut, "warning: %s: it was written back from that copy\n", printable.Lines(kr.Damage))
		return nil
	}
	fmt.Fprintf(errOut, "warning: %s: %s\n", printable.Lines(kr.Damage), keyHint)
	return nil
}

// repo returns the password of a namespace's Kopia repository.
func (k *locationKeys) repo(namespace string) (string, error) {
	kr, err := k.open()
	if err != nil {
		return "", err
	}
	return kr.RepoPassword(namespace)
}

// repos is the location's repository service, each namespace's repository opened with its key.
func (k *locationKeys) repos(location string) *repo.Service {
	return &repo.Service{Location: location, Key: k.repo}
}

// archive returns the key of the location's resources archives.
func (k *locationKeys) archive() (string, error) {
	kr, err := k.open()
	if err != nil {
		return "", err
	}
	return kr.ArchiveKey()
}

// selectionOptions are the flags choosing what create and restore cover; the verbs word their
// help differently (what to back up, what of the backup to restore).
type selectionOptions struct {
	IncludeNamespaces []string
	ExcludeNamespaces []string
	IncludeResources  []string
	ExcludeResources  []string
	Selector          string
}

// selectionHelp is the verb's wording of the include flags.
type selectionHelp struct{ includeNamespaces, excludeNamespaces, includeResources, excludeResources string }

func (o *selectionOptions) addFlags(fs *pflag.FlagSet, h selectionHelp) {
	fs.StringSliceVar(&o.IncludeNamespaces, "include-namespaces", nil, h.includeNamespaces)
	fs.StringSliceVar(&o.ExcludeNamespaces, "exclude-namespaces", nil, h.excludeNamespaces)
	fs.StringSliceVar(&o.IncludeResources, "include-resources", nil, h.includeResources)
	fs.StringSliceVar(&o.ExcludeResources, "exclude-resources", nil, h.excludeResources)
	fs.StringVarP(&o.Selector, "selector", "l", "", "label selector: only objects that match")
}

// filters are the selection as the engines take it; include replaces --include-namespaces when
// the verb has a default of its own (create's -n).
func (o *selectionOptions) filters(include []string) (selection.NamespaceFilter, selection.ResourceFilter) {
	if include == nil {
		include = o.IncludeNamespaces
	}
	return selection.NamespaceFilter{Include: include, Exclude: o.ExcludeNamespaces},
		selection.ResourceFilter{Include: o.IncludeResources, Exclude: o.ExcludeResources}
}

// age formats a duration like kubectl's AGE column.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// joinOr joins names read from a backup or the cluster, each quoted if need be.
func joinOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	q := make([]string, len(s))
	for i, n := range s {
		q[i] = printable.Name(n)
	}
	return strings.Join(q, ",")
}

// examples trims the indentation of a command's examples, kubectl style.
func examples(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// runSteps is a command's RunE in kubectl's order: Complete (called by the caller, its error
// given here), then Validate, then Run.
func runSteps(ctx context.Context, completed error, o interface {
	Validate() error
	Run(context.Context) error
}) error {
	if completed != nil {
		return completed
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(ctx)
}
