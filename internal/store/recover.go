package store

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MaxRecoverKeys bounds how many object names Recover holds at once (a listing of a hostile or
// huge bucket must not take the machine's memory).
const MaxRecoverKeys = 5_000_000

// Recovery is what Recover did (or, in a dry run, would do).
type Recovery struct {
	AsOf      time.Time `json:"asOf"`
	Restored  []string  `json:"restored"`  // brought back to their version as of AsOf (deleted or overwritten since)
	Removed   []string  `json:"removed"`   // created after AsOf: hidden behind a delete marker
	Unchanged int       `json:"unchanged"` // already as of AsOf
	DryRun    bool      `json:"dryRun,omitempty"`
}

// keyState is what Recover knows of one key: its current version and its newest version at AsOf.
type keyState struct {
	latestID     string
	latestMarker bool
	bestID       string
	bestTime     time.Time
}

// Recover puts the location back as it was at asOf, from the versions a versioned (locked)
// bucket keeps: a key deleted since (its current version is a delete marker) or overwritten
// since gets its version as of asOf copied back on top (locked again, when the location is);
// a key created since is hidden behind a delete marker. Versions are never deleted: what an
// attacker wrote stays in the bucket's history, and a wrong asOf can be recovered from again.
func (l *Location) Recover(ctx context.Context, asOf time.Time, dryRun bool) (*Recovery, error) {
	t, err := l.s3()
	if err != nil {
		return nil, err
	}
	keys, err := t.versions(ctx, asOf, l.display)
	if err != nil {
		return nil, err
	}
	if s := keys[t.prefix+ConfigFile]; s != nil && s.bestID != "" && l.lock == nil {
		// The config was deleted or overwritten since: its version of then says how to lock.
		if l.lock, err = t.readConfig(ctx, s.bestID, l.display); err != nil {
			return nil, err
		}
	}
	res := &Recovery{AsOf: asOf.UTC(), DryRun: dryRun, Restored: []string{}, Removed: []string{}}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		s := keys[k]
		rel := strings.TrimPrefix(k, t.prefix)
		if strings.HasPrefix(rel, ".pvbackup-") {
			continue // probes, markers and the lease: not part of any backup
		}
		switch {
		case s.bestID == "" && s.latestMarker, s.bestID != "" && !s.latestMarker && s.latestID == s.bestID:
			res.Unchanged++
		case s.bestID == "":
			res.Removed = append(res.Removed, rel)
			if !dryRun {
				if _, err := t.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(k)}); err != nil {
					return res, fmt.Errorf("hide %s (created after %s) in %s: %s", rel, asOf.UTC().Format(time.RFC3339), l.display, shortError(err))
				}
			}
		default:
			res.Restored = append(res.Restored, rel)
			if !dryRun {
				if err := t.copyBack(ctx, k, s.bestID, l.lock); err != nil {
					return res, fmt.Errorf("bring back %s as of %s in %s: %s", rel, asOf.UTC().Format(time.RFC3339), l.display, shortError(err))
				}
			}
		}
	}
	return res, nil
}

// versions lists every version and delete marker under the location's prefix.
func (t *s3Target) versions(ctx context.Context, asOf time.Time, display string) (map[string]*keyState, error) {
	keys := map[string]*keyState{}
	state := func(k string) (*keyState, error) {
		s := keys[k]
		if s == nil {
			if len(keys) >= MaxRecoverKeys {
				return nil, fmt.Errorf("%s holds more than %d object names: recover it in parts (one prefix at a time)", display, MaxRecoverKeys)
			}
			s = &keyState{}
			keys[k] = s
		}
		return s, nil
	}
	p := s3.NewListObjectVersionsPaginator(t.client, &s3.ListObjectVersionsInput{Bucket: aws.String(t.bucket), Prefix: aws.String(t.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the object versions of %s: %s (recovery needs s3:ListBucketVersions)", display, shortError(err))
		}
		for _, v := range page.Versions {
			s, err := state(aws.ToString(v.Key))
			if err != nil {
				return nil, err
			}
			s.see(aws.ToString(v.VersionId), aws.ToTime(v.LastModified), aws.ToBool(v.IsLatest), false, asOf)
		}
		for _, m := range page.DeleteMarkers {
			s, err := state(aws.ToString(m.Key))
			if err != nil {
				return nil, err
			}
			s.see(aws.ToString(m.VersionId), aws.ToTime(m.LastModified), aws.ToBool(m.IsLatest), true, asOf)
		}
	}
	return keys, nil
}

// see takes one version of the key into account. A delete marker at or before asOf means the key
// did not exist then, unless a newer version (still at or before asOf) came after it.
func (s *keyState) see(id string, mod time.Time, latest, marker bool, asOf time.Time) {
	if latest {
		s.latestID, s.latestMarker = id, marker
	}
	// Times have whole seconds: of two versions in the same second, the current one is the newer.
	if mod.After(asOf) || (!s.bestTime.IsZero() && (mod.Before(s.bestTime) || mod.Equal(s.bestTime) && !latest)) {
		return
	}
	s.bestTime = mod
	s.bestID = id
	if marker {
		s.bestID = ""
	}
}

// copyBack copies version id of key onto key, as its new current version.
func (t *s3Target) copyBack(ctx context.Context, key, id string, lock *Lock) error {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	in := &s3.CopyObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key),
		CopySource: aws.String(t.bucket + "/" + strings.Join(segs, "/") + "?versionId=" + url.QueryEscape(id))}
	if lock == nil {
		_, err := t.client.CopyObject(ctx, in)
		return err
	}
	until := aws.Time(lock.Until(time.Now()))
	in.ObjectLockMode, in.ObjectLockRetainUntilDate = s3types.ObjectLockMode(lock.Mode), until
	out, err := t.client.CopyObject(ctx, in)
	if err != nil {
		return err
	}
	// Some stores (SeaweedFS) take no lock from a copy: set it on the new version.
	_, err = t.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(t.bucket), Key: aws.String(key), VersionId: out.VersionId,
		Retention: &s3types.ObjectLockRetention{Mode: s3types.ObjectLockRetentionMode(lock.Mode), RetainUntilDate: until}})
	return err
}

// readConfig reads version id of the location's ConfigFile and returns its lock.
func (t *s3Target) readConfig(ctx context.Context, id, display string) (*Lock, error) {
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.prefix + ConfigFile), VersionId: aws.String(id)})
	if err != nil {
		return nil, fmt.Errorf("read version %s of %s in %s: %s", id, ConfigFile, display, shortError(err))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read version %s of %s in %s: %s", id, ConfigFile, display, shortError(err))
	}
	return parseConfig(b, display)
}
