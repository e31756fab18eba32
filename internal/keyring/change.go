package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Steps of ChangePassword, in order, as passed to ChangeOptions.AfterStep.
const (
	StepNextWritten = "next-written" // the key wrapped by the new password is in NextFile
	StepSwitched    = "switched"     // KeyFile holds the key wrapped by the new password
	StepCleaned     = "cleaned"      // NextFile is gone
)

// ChangeOptions tune ChangePassword.
type ChangeOptions struct {
	// AfterStep, when set, is called after each step; an error stops the change there (tests use
	// it to stop the change at each point, as a crash would).
	AfterStep func(step string) error
}

// ChangeResult is what a password change did.
type ChangeResult struct {
	Location string        `json:"location"`
	Resumed  bool          `json:"resumed"` // an earlier, unfinished change was found and finished
	Seconds  float64       `json:"seconds"`
	Duration time.Duration `json:"-"`
}

// ChangePassword rewraps the location's key with newPassword. No data is re-encrypted: every
// repository and archive key derives from the location key, which stays the same.
//
// It is crash-safe: the key is written under the new password to NextFile, then KeyFile is
// overwritten (one PUT: readers see the old or the new object whole), then NextFile is deleted.
// Stopped anywhere, every backup opens with the old or the new password (Open tries NextFile),
// and running it again with either as the current password finishes the change. Once it has
// returned, the old password opens nothing.
func ChangePassword(ctx context.Context, loc *store.Location, current, newPassword string, opts ChangeOptions) (*ChangeResult, error) {
	start := time.Now()
	if newPassword == "" {
		return nil, errors.New("the new password is empty")
	}
	if newPassword == current {
		return nil, errors.New("the new password is the current one")
	}
	res := &ChangeResult{Location: loc.String()}
	k, err := openForChange(ctx, loc, current, newPassword, res)
	if err != nil {
		return nil, err
	}
	data, err := wrap(k.key, newPassword)
	if err != nil {
		return nil, fmt.Errorf("wrap the key of %s: %w", loc, err)
	}
	if err := switchKey(ctx, loc, data, opts); err != nil {
		return nil, err
	}
	// Another change run at the same moment may have written its own password last: say so
	// rather than report a password that opens nothing.
	if _, _, err := unwrapFile(ctx, loc, KeyFile, newPassword); err != nil {
		if errors.Is(err, ErrWrongPassword) {
			return nil, fmt.Errorf("%s: %s was overwritten by another password change running at the same time; the password set by that one is in force", loc, KeyFile)
		}
		return nil, err
	}
	res.Duration = time.Since(start)
	res.Seconds = res.Duration.Seconds()
	return res, nil
}

// openForChange opens the key with the current password or, when a change stopped past its
// switch is run again, with the new one (res.Resumed says an earlier change was unfinished).
func openForChange(ctx context.Context, loc *store.Location, current, newPassword string, res *ChangeResult) (*Keyring, error) {
	var err error
	if res.Resumed, err = loc.Bucket().Exists(ctx, NextFile); err != nil {
		return nil, fmt.Errorf("look for %s in %s: %w", NextFile, loc, err)
	}
	k, err := Open(ctx, loc, current)
	if errors.Is(err, ErrWrongPassword) {
		// The same command run again after it stopped past the switch: the new password is in
		// force already; finish (remove the leftover).
		if kn, nerr := Open(ctx, loc, newPassword); nerr == nil {
			k, err, res.Resumed = kn, nil, true
		}
	}
	return k, err
}

// switchKey writes the key wrapped by the new password (data) to NextFile, then over KeyFile
// and the copies kept with the backups, then deletes NextFile, calling opts.AfterStep after each
// step.
func switchKey(ctx context.Context, loc *store.Location, data []byte, opts ChangeOptions) error {
	step := func(name string) error {
		if opts.AfterStep != nil {
			return opts.AfterStep(name)
		}
		return nil
	}
	// loc.Write: on file:// synced to disk before the next step.
	if err := loc.Write(ctx, NextFile, data, "application/octet-stream"); err != nil {
		return fmt.Errorf("write %s to %s: %w (nothing changed: the current password still opens everything)", NextFile, loc, err)
	}
	if err := step(StepNextWritten); err != nil {
		return err
	}
	if err := loc.Write(ctx, KeyFile, data, "application/octet-stream"); err != nil {
		return fmt.Errorf("write %s to %s: %w (both passwords open the location: run the change again to finish it)", KeyFile, loc, err)
	}
	if err := step(StepSwitched); err != nil {
		return err
	}
	// The copies kept with the backups (copies.go) under the new password too: the old one must
	// open nothing, even if KeyFile goes.
	if err := rewrapCopies(ctx, loc, data); err != nil {
		return fmt.Errorf("%w (the new password is in force; run the change again to finish it)", err)
	}
	if err := loc.Bucket().Delete(ctx, NextFile); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s from %s: %w (the new password is in force; run the change again to remove the leftover)", NextFile, loc, err)
	}
	return step(StepCleaned)
}
