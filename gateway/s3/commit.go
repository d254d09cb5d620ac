package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"depot"
	"depot/nameserver/nsclient"
)

// This file holds what every S3 write does once its bytes are stored:
// the nameserver write that makes them live (a commit), and what is left
// of the bytes when that write fails.

// commitContext returns the context of a commit: detached from the
// client's request, so that a client that disconnects or gives up cannot
// cut a commit short and leave its outcome unknown, and bounded by
// Config.CommitTimeout.
func (s *Server) commitContext(q *request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(q.ctx), s.cfg.CommitTimeout)
}

// settle decides, after a commit of segs failed with err, what becomes of
// segs and what error the client gets. It is the one place where every
// write path tells a refusal from an unknown outcome:
//
//   - a definite refusal (nsclient.Refused): segs are discarded and err is
//     returned for the caller to map;
//   - an unknown outcome: applied, when not nil, reads the nameserver's
//     state back; if it shows the commit took effect, settle returns nil
//     (the write succeeded). Otherwise segs are kept: live if the commit
//     applies after all, reclaimed by the orphan sweep (which deletes only
//     what nothing references) if it never does. The fids are logged at
//     warn and the client gets a 5xx, so that it retries rather than trust
//     a failure that may not be one.
func (s *Server) settle(q *request, op string, segs []depot.Segment, err error, applied func(context.Context) (bool, error)) error {
	if nsclient.Refused(err) {
		s.discard(segs)
		return err
	}
	if applied != nil {
		ctx, cancel := s.commitContext(q)
		ok, rerr := applied(ctx)
		cancel()
		if rerr == nil && ok {
			s.cfg.Logger.Info("s3: commit failed but had applied", "op", op, "bucket", q.bucket, "key", q.key, "err", err)
			return nil
		}
	}
	fids := make([]string, len(segs))
	for i, sg := range segs {
		fids[i] = sg.Fid
	}
	s.cfg.Logger.Warn("s3: commit outcome unknown; its segments are left to the orphan sweep",
		"op", op, "bucket", q.bucket, "key", q.key, "fids", strings.Join(fids, " "), "err", err)
	if errors.Is(err, depot.ErrNoLeader) {
		return fmt.Errorf("%s %s/%s: outcome unknown: %w", op, q.bucket, q.key, err)
	}
	return s3err("InternalError", http.StatusInternalServerError,
		"We encountered an internal error: the outcome of the write is unknown. Please try again.")
}

// holds returns a read-back for settle: whether bucket/key now holds
// exactly segs. Fids are never reused, so it does only if the commit that
// named them applied.
func holds(ns *nsclient.Client, bucket, key string, segs []depot.Segment) func(context.Context) (bool, error) {
	if len(segs) == 0 {
		return nil // an empty object is told from no other by its segments
	}
	return func(ctx context.Context) (bool, error) {
		o, err := ns.GetObject(ctx, bucket, key)
		if errors.Is(err, depot.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return slices.Equal(o.Segments, segs), nil
	}
}

// commit switches the key to o on a context of its own (commitContext).
// When the nameserver refuses, o's new segments are discarded; when the
// outcome is unknown they are kept (see settle).
//
// The version the commit made goes out in x-amz-version-id (read back
// with the key when the outcome had to be resolved).
func (s *Server) commit(q *request, o depot.Object) error {
	ctx, cancel := s.commitContext(q)
	res, err := q.ns.PutObjectVersion(ctx, o)
	cancel()
	if err == nil {
		setVersionHeader(q, res.VersionID)
		return nil
	}
	if err := s.settle(q, "put", o.Segments, err, holds(q.ns, o.Bucket, o.Key, o.Segments)); err != nil {
		return s.commitError(q, o.Bucket, o.Key, o.Precondition, err)
	}
	s.readBackVersion(q, o.Bucket, o.Key)
	return nil
}

// readBackVersion sets x-amz-version-id from the key's current version
// after a write whose outcome was read back (best effort: the header is
// left out if the read fails).
func (s *Server) readBackVersion(q *request, bucket, key string) {
	ctx, cancel := s.commitContext(q)
	defer cancel()
	cur, err := q.ns.GetObject(ctx, bucket, key)
	if err != nil {
		return
	}
	if cur.VersionID != "" {
		setVersionHeader(q, cur.VersionID)
	} else if bi, err := s.bucketInfo(ctx, q, bucket); err == nil && bi.versioning != "" {
		setVersionHeader(q, nullVersion)
	}
}

// commitError maps a refused object commit to its S3 error.
func (s *Server) commitError(q *request, bucket, key string, p *depot.Precondition, err error) error {
	switch {
	case errors.Is(err, depot.ErrPrecondition):
		return errPrecondition()
	case errors.Is(err, depot.ErrNotFound):
		// No bucket, or (If-Match) no key.
		if p != nil && p.IfMatch != "" {
			if _, berr := q.ns.Bucket(q.ctx, bucket); berr == nil {
				return errNoSuchKey(key)
			}
		}
		return errNoSuchBucket(bucket)
	}
	return err
}

// writeCondition reads the If-Match and If-None-Match headers of a
// PutObject, CopyObject or CompleteMultipartUpload. The nameserver decides
// them in the transaction that writes (depot.Precondition), so there is no
// window between check and write: of two conditional writes racing for a
// key, the one applied second sees the first and fails with
// PreconditionFailed (S3's 409 ConditionalRequestConflict never arises).
func writeCondition(h http.Header) (*depot.Precondition, error) {
	im, inm := strings.TrimSpace(h.Get("If-Match")), strings.TrimSpace(h.Get("If-None-Match"))
	if im == "" && inm == "" {
		return nil, nil
	}
	p := &depot.Precondition{}
	if inm != "" {
		if inm != "*" {
			return nil, s3err("NotImplemented", http.StatusNotImplemented,
				"A header you provided implies functionality that is not implemented: If-None-Match on a write takes only *")
		}
		p.IfNoneMatch = true
	}
	if im != "" {
		p.IfMatch = strings.Trim(strings.TrimPrefix(im, "W/"), `"`)
		if p.IfMatch == "" {
			return nil, errInvalidArgument("If-Match names no ETag")
		}
	}
	return p, nil
}
