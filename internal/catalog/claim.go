package catalog

import (
	"gocloud.dev/gcerrors"

	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Claim is claim.json: the first file of a backup, written with a write that fails if the file
// exists, so that of two runs creating one name only one goes on. It is also the probe that the
// location can be written, before anything touches the cluster.
type Claim struct {
	ID          string    `json:"id"` // random: tells this run's claim from another's
	Host        string    `json:"host,omitempty"`
	PID         int       `json:"pid,omitempty"`
	StartTime   time.Time `json:"startTime"`
	ToolVersion string    `json:"toolVersion,omitempty"`
}

// NewClaim describes this run.
func NewClaim(now time.Time, toolVersion string) *Claim {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	return &Claim{ID: hex.EncodeToString(b), Host: host, PID: os.Getpid(), StartTime: now.UTC().Truncate(time.Second), ToolVersion: toolVersion}
}

// String describes who claimed the name, for messages.
func (c *Claim) String() string {
	who := "another run"
	if c.Host != "" {
		who = "a run on " + c.Host
		if c.PID != 0 {
			who += fmt.Sprintf(" (pid %d)", c.PID)
		}
	}
	return fmt.Sprintf("%s started at %s", who, c.StartTime.UTC().Format(time.RFC3339))
}

// Claim takes the backup name for this run. A name in use, by a finished backup or by a run
// still writing, is ErrExists naming who has it; a location that cannot be written fails here,
// before the backup has done anything.
func (c *Catalog) Claim(ctx context.Context, name string, cl *Claim) error {
	exists, err := c.Exists(ctx, name)
	if err != nil {
		return err
	}
	if exists {
		return c.taken(ctx, name)
	}
	b, err := json.MarshalIndent(cl, "", "  ")
	if err != nil {
		return err
	}
	err = c.loc.WriteNew(ctx, Key(name, ClaimFile), append(b, '\n'), "application/json")
	if errors.Is(err, store.ErrExists) {
		return c.taken(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("cannot write to backup location %s (nothing was backed up; check the credentials' write permission): %w", c.loc, err)
	}
	return nil
}

// taken is the error for a name in use, naming the run that has it when its claim says.
func (c *Catalog) taken(ctx context.Context, name string) error {
	hint := fmt.Sprintf("choose another name, or `kubectl pvbackup delete %s` first", name)
	if _, err := c.Manifest(ctx, name); err == nil {
		return fmt.Errorf("backup %q already exists in %s (%s): %w", name, c.loc, hint, ErrExists)
	}
	if cl, err := c.ReadClaim(ctx, name); err == nil {
		return fmt.Errorf("backup %q in %s is being written by %s, or that run was interrupted (%s): %w", name, c.loc, cl, hint, ErrExists)
	}
	return fmt.Errorf("backup %q already exists in %s, incomplete (%s): %w", name, c.loc, hint, ErrExists)
}

// maxClaim bounds the read of claim.json: ours are a few hundred bytes.
const maxClaim = 64 << 10

// ReadClaim reads a backup's claim.json; a backup written before claims existed has none.
func (c *Catalog) ReadClaim(ctx context.Context, name string) (*Claim, error) {
	b, err := c.readBounded(ctx, name, ClaimFile, maxClaim)
	if err != nil {
		return nil, err
	}
	var cl Claim
	if err := json.Unmarshal(b, &cl); err != nil {
		return nil, fmt.Errorf("backup %q: %s is not valid JSON: %w", name, ClaimFile, err)
	}
	return &cl, nil
}

// Release gives the name back when a run stops before it wrote anything but its claim (the
// cluster was unreachable, the selection matched nothing it could list). Only this run's own
// claim is removed.
func (c *Catalog) Release(ctx context.Context, name string, cl *Claim) error {
	got, err := c.ReadClaim(ctx, name)
	if err != nil || got.ID != cl.ID {
		return err
	}
	// The key's copy (internal/keyring) is written right after the claim: it goes first.
	if err := c.loc.Bucket().Delete(ctx, Key(name, KeyCopyFile)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("release backup name %q in %s: %w", name, c.loc, c.loc.Scrub(err))
	}
	if err := c.loc.Bucket().Delete(ctx, Key(name, ClaimFile)); err != nil {
		return fmt.Errorf("release backup name %q in %s: %w", name, c.loc, c.loc.Scrub(err))
	}
	return nil
}
