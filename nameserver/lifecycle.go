package nameserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"depot"
	"depot/nameserver/nsclient"
)

// S3 lifecycle (see doc.go, "Lifecycle"). The rules live in the bucket
// record (nsclient.Bucket.Lifecycle); the leader's lifecycle loop walks
// every bucket that has rules once per LifecycleInterval, reading the
// versions as ListVersions pages them, and proposes the deletes the rules
// call for, at most LifecycleRate per second. Each delete is an ordinary
// command decided in apply: an expiry of a current version names it
// (objectKeyCmd.IfCurrent) so that a newer write is never expired, and
// Object Lock refuses what it protects. A refused delete is skipped and
// tried again on the next pass.

// maxLifecycleRules is S3's limit of rules per configuration.
const maxLifecycleRules = 1000

// checkLifecycle validates a bucket's lifecycle rules.
func checkLifecycle(rules []nsclient.LifecycleRule) error {
	if len(rules) > maxLifecycleRules {
		return fmt.Errorf("%w: %d lifecycle rules, at most %d", depot.ErrBadRequest, len(rules), maxLifecycleRules)
	}
	ids := make(map[string]bool, len(rules))
	for i, r := range rules {
		switch {
		case len(r.ID) > 255:
			return fmt.Errorf("%w: lifecycle rule %d: ID longer than 255 characters", depot.ErrBadRequest, i)
		case r.ID != "" && ids[r.ID]:
			return fmt.Errorf("%w: lifecycle rule ID %q twice", depot.ErrBadRequest, r.ID)
		case r.ExpireDays < 0 || r.NoncurrentDays < 0 || r.NewerNoncurrent < 0 || r.AbortUploadDays < 0 ||
			r.SizeGreaterThan < 0 || r.SizeLessThan < 0:
			return fmt.Errorf("%w: lifecycle rule %d: negative count", depot.ErrBadRequest, i)
		case r.ExpireDays > 0 && !r.ExpireDate.IsZero():
			return fmt.Errorf("%w: lifecycle rule %d: expiration by days and by date", depot.ErrBadRequest, i)
		case r.ExpiredDeleteMarker && (r.ExpireDays > 0 || !r.ExpireDate.IsZero()):
			return fmt.Errorf("%w: lifecycle rule %d: ExpiredObjectDeleteMarker with days or a date", depot.ErrBadRequest, i)
		case r.SizeLessThan > 0 && r.SizeLessThan <= r.SizeGreaterThan:
			return fmt.Errorf("%w: lifecycle rule %d: ObjectSizeLessThan not above ObjectSizeGreaterThan", depot.ErrBadRequest, i)
		case r.ExpireDays == 0 && r.ExpireDate.IsZero() && !r.ExpiredDeleteMarker && r.NoncurrentDays == 0 && r.AbortUploadDays == 0:
			return fmt.Errorf("%w: lifecycle rule %d: no action", depot.ErrBadRequest, i)
		}
		ids[r.ID] = true
	}
	return nil
}

// ruleMatches reports whether rule r applies to object version o.
func ruleMatches(r nsclient.LifecycleRule, o depot.Object) bool {
	if !r.Enabled || !strings.HasPrefix(o.Key, r.Prefix) {
		return false
	}
	if r.SizeGreaterThan > 0 && o.Size <= r.SizeGreaterThan || r.SizeLessThan > 0 && o.Size >= r.SizeLessThan {
		return false
	}
	if len(r.Tags) > 0 {
		tags, err := url.ParseQuery(o.Meta["x-amz-tagging"])
		if err != nil {
			return false
		}
		for k, v := range r.Tags {
			if !tags.Has(k) || tags.Get(k) != v {
				return false
			}
		}
	}
	return true
}

// lifecycleAction is one delete the rules call for.
type lifecycleAction struct {
	kind    string // metric label: expire, noncurrent, marker, abort
	key     string
	version *string         // a version to delete; nil: expire the current one
	current *currentVersion // with version nil: the current version expired
	upload  string          // kind abort: the upload id
}

// lifecycleDue decides, at now, what the rules call for among the versions
// of one key (newest first, as ListVersions gives them).
func lifecycleDue(rules []nsclient.LifecycleRule, versions []nsclient.VersionEntry, now time.Time, day time.Duration) []lifecycleAction {
	var out []lifecycleAction
	if len(versions) == 0 {
		return nil
	}
	cur := versions[0]
	if cur.IsLatest && !cur.DeleteMarker {
		for _, r := range rules {
			if !ruleMatches(r, cur.Object) {
				continue
			}
			due := r.ExpireDays > 0 && !now.Before(cur.Modified.Add(time.Duration(r.ExpireDays)*day)) ||
				!r.ExpireDate.IsZero() && !now.Before(r.ExpireDate)
			if due {
				out = append(out, lifecycleAction{kind: "expire", key: cur.Key,
					current: &currentVersion{VersionID: cur.VersionID, Modified: cur.Modified}})
				break
			}
		}
	}
	if cur.IsLatest && cur.DeleteMarker && len(versions) == 1 {
		for _, r := range rules {
			if r.ExpiredDeleteMarker && r.Enabled && strings.HasPrefix(cur.Key, r.Prefix) {
				v := s3Name(cur.VersionID)
				out = append(out, lifecycleAction{kind: "marker", key: cur.Key, version: &v})
				break
			}
		}
	}
	// Non-current versions: each stopped being current when the next newer
	// one was written.
	for i := 1; i < len(versions); i++ {
		v := versions[i]
		if v.IsLatest {
			continue
		}
		became := versions[i-1].Modified
		for _, r := range rules {
			if r.NoncurrentDays == 0 || i-1 < r.NewerNoncurrent || !ruleMatches(r, v.Object) && !(v.DeleteMarker && r.Enabled && strings.HasPrefix(v.Key, r.Prefix)) {
				continue
			}
			if !now.Before(became.Add(time.Duration(r.NoncurrentDays) * day)) {
				id := s3Name(v.VersionID)
				out = append(out, lifecycleAction{kind: "noncurrent", key: v.Key, version: &id})
				break
			}
		}
	}
	return out
}

// clock is the lifecycle worker's time: the wall clock, or a test's.
func (s *Server) clock() time.Time {
	if s.lifecycleNow != nil {
		return s.lifecycleNow()
	}
	return time.Now()
}

// s3Name is S3's name of version id v.
func s3Name(v string) string {
	if v == "" {
		return nullVersion
	}
	return v
}

// lifecycleLoop runs lifecycle passes every LifecycleInterval until ctx
// ends.
func (s *Server) lifecycleLoop(ctx context.Context) {
	if s.cfg.LifecycleInterval <= 0 {
		return
	}
	limit := rate.NewLimiter(rate.Limit(s.cfg.LifecycleRate), max(1, int(s.cfg.LifecycleRate)))
	t := time.NewTicker(s.cfg.LifecycleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.lifecyclePass(ctx, limit); err != nil && ctx.Err() == nil {
			s.log.Warn("lifecycle pass", "err", err)
		}
	}
}

// lifecyclePass applies every bucket's rules once.
func (s *Server) lifecyclePass(ctx context.Context, limit *rate.Limiter) error {
	start := time.Now()
	buckets, err := s.Buckets(ctx)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		if len(b.Lifecycle) == 0 {
			continue
		}
		if err := s.lifecycleBucket(ctx, b, limit); err != nil {
			return fmt.Errorf("bucket %s: %w", b.Name, err)
		}
	}
	s.metrics.lifecyclePasses.Inc()
	s.lifecycle.passes.Add(1)
	s.lifecycle.last.Store(time.Now().UnixNano())
	s.metrics.lifecycleLastPass.Set(float64(time.Now().Unix()))
	s.metrics.lifecyclePassSeconds.Set(time.Since(start).Seconds())
	return nil
}

func (s *Server) lifecycleBucket(ctx context.Context, b nsclient.Bucket, limit *rate.Limiter) error {
	now, day := s.clock(), s.cfg.LifecycleDay
	var actions []lifecycleAction
	opts := nsclient.VersionListOptions{Limit: MaxListLimit}
	var key string
	var group []nsclient.VersionEntry
	flush := func() {
		actions = append(actions, lifecycleDue(b.Lifecycle, group, now, day)...)
		group = group[:0]
	}
	for range 1 << 20 {
		page, err := s.ListVersions(ctx, b.Name, opts)
		if err != nil {
			return err
		}
		for _, v := range page.Versions {
			if v.Key != key && len(group) > 0 {
				flush()
			}
			key = v.Key
			group = append(group, v)
		}
		s.metrics.lifecycleScanned.Add(float64(len(page.Versions)))
		// Act on what this page decided (its last key's versions may go
		// on in the next page: they wait for it).
		if err := s.lifecycleApply(ctx, b.Name, actions, limit); err != nil {
			return err
		}
		actions = actions[:0]
		if !page.Truncated {
			break
		}
		opts.KeyMarker, opts.VersionIDMarker = page.NextKeyMarker, page.NextVersionIDMarker
	}
	if len(group) > 0 {
		flush()
	}
	if err := s.lifecycleApply(ctx, b.Name, actions, limit); err != nil {
		return err
	}
	return s.lifecycleUploads(ctx, b, now, day, limit)
}

// lifecycleUploads aborts the bucket's uploads that a rule says are too old.
func (s *Server) lifecycleUploads(ctx context.Context, b nsclient.Bucket, now time.Time, day time.Duration, limit *rate.Limiter) error {
	var actions []lifecycleAction
	for _, r := range b.Lifecycle {
		if !r.Enabled || r.AbortUploadDays == 0 {
			continue
		}
		opts := nsclient.UploadListOptions{Prefix: r.Prefix}
		for range 1 << 20 {
			page, err := s.Uploads(ctx, b.Name, opts)
			if err != nil {
				return err
			}
			for _, u := range page.Uploads {
				if !now.Before(u.Initiated.Add(time.Duration(r.AbortUploadDays) * day)) {
					actions = append(actions, lifecycleAction{kind: "abort", key: u.Key, upload: u.ID})
				}
			}
			if !page.Truncated || len(page.Uploads) == 0 {
				break
			}
			last := page.Uploads[len(page.Uploads)-1]
			opts.AfterKey, opts.AfterID = last.Key, last.ID
		}
	}
	return s.lifecycleApply(ctx, b.Name, actions, limit)
}

// lifecycleApply proposes actions, paced by limit. A refusal (the object
// changed, Object Lock, already gone) skips the action.
func (s *Server) lifecycleApply(ctx context.Context, bucket string, actions []lifecycleAction, limit *rate.Limiter) error {
	done := map[string]bool{}
	for _, a := range actions {
		if err := limit.Wait(ctx); err != nil {
			return err
		}
		var err error
		switch a.kind {
		case "abort":
			if done["u"+a.upload] {
				continue
			}
			done["u"+a.upload] = true
			_, err = s.store.propose(ctx, CmdAbortUpload, uploadKeyCmd{Bucket: bucket, Key: a.key, ID: a.upload})
		default:
			_, err = s.store.propose(ctx, CmdDeleteObject, objectKeyCmd{Bucket: bucket, Key: a.key, Version: a.version, IfCurrent: a.current})
		}
		switch {
		case err == nil:
			s.metrics.lifecycleActions.WithLabelValues(a.kind).Inc()
			s.lifecycle.applied.Add(1)
		case errors.Is(err, depot.ErrPrecondition), errors.Is(err, depot.ErrNotFound), errors.Is(err, depot.ErrLocked):
			s.metrics.lifecycleSkipped.WithLabelValues(a.kind).Inc()
			s.lifecycle.skipped.Add(1)
		default:
			return err
		}
	}
	return nil
}
