package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrNoConditionalWrites is returned (wrapped, naming the store) by CheckConditional when the
// store does not refuse a write over an existing object (If-None-Match) or a replace of a version
// that is no longer current (If-Match).
var ErrNoConditionalWrites = errors.New("the store ignores conditional writes")

// CheckConditional probes, with a marker it deletes again, that the location's store honours
// the conditional writes this plugin relies on: a backup name's claim and a location's first key
// (If-None-Match: on a store that ignores it, two first backups at once could each make a key and
// one lose its backups), and the lease's takeover (If-Match).
func CheckConditional(ctx context.Context, l *Location) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := MarkerPrefix + "conditional-" + hex.EncodeToString(b)
	defer func() {
		_ = l.bucket.Delete(context.WithoutCancel(ctx), key)
		_ = l.bucket.Delete(context.WithoutCancel(ctx), key+".lock") // file://'s ReplaceIf lock
	}()
	if err := l.WriteNew(ctx, key, []byte("first\n"), "text/plain"); err != nil {
		return fmt.Errorf("write a marker %s into %s: %s", key, l.display, shortError(err))
	}
	err := l.WriteNew(ctx, key, []byte("second\n"), "text/plain")
	switch {
	case err == nil:
		return fmt.Errorf("%s wrote over an existing object although the write said If-None-Match: * (%w): two runs can take one backup name, and two first backups at once can each make a location key", l.display, ErrNoConditionalWrites)
	case !errors.Is(err, ErrExists):
		return fmt.Errorf("a conditional write to %s failed: %s", l.display, shortError(err))
	}
	_, v, err := l.ReadVersion(ctx, key, 1<<10)
	if err != nil {
		return fmt.Errorf("read the marker %s back from %s: %s", key, l.display, shortError(err))
	}
	if err := l.Write(ctx, key, []byte("third\n"), "text/plain"); err != nil {
		return fmt.Errorf("write the marker %s in %s: %s", key, l.display, shortError(err))
	}
	err = l.ReplaceIf(ctx, key, []byte("fourth\n"), v)
	switch {
	case err == nil:
		return fmt.Errorf("%s replaced an object that had changed although the write said If-Match (%w): two runs can take over one expired maintenance lease", l.display, ErrNoConditionalWrites)
	case !errors.Is(err, ErrChanged):
		return fmt.Errorf("a conditional replace in %s failed: %s", l.display, shortError(err))
	}
	return nil
}
