// Package nsclient is the Go client of the nameserver's HTTP API, and the
// home of every type that API carries (api.go). The native client, the
// gateway and the dataservers use it; it imports nothing of the nameserver
// itself.
//
// Errors answered by the nameserver come back as *httpx.RemoteError, which
// unwraps to depot's sentinels: errors.Is(err, depot.ErrNotFound) works.
package nsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"depot"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
)

// Client calls a nameserver, or any of the members of a raft group of
// nameservers. It is safe for concurrent use.
//
// With several members, a request goes to the one believed to lead (a
// member's answers name the leader in the Depot-Nameserver-Leader header);
// when that one cannot be reached or answers NoLeader (an election is under
// way), the client tries the next member, backing off, until RetryFor
// passed or the context ended.
//
// Every mutating call (any method but GET and HEAD) carries a request id
// (HeaderRequestID): the caller's (WithRequestID) or a fresh one, the same
// on every try of the call. The nameserver applies a command of one id at
// most once and answers a repeat with the recorded result, so a try whose
// connection broke or whose answer was lost is simply tried again, against
// the same nameserver too. A call that gives up after a try that may have
// been applied fails with an error wrapping depot.ErrUnknownOutcome: the
// caller must not take it for a refusal. Any other error answered by the
// nameserver is a definite refusal.
type Client struct {
	bases []string
	cur   atomic.Int64 // index into bases of the member in use
	key   auth.Key
	hc    *http.Client
	local Local // nil: every call goes over HTTP

	// RetryFor bounds the retries of one call. Default 15s; set it before
	// the first call.
	RetryFor time.Duration
	// TryTimeout bounds one try of a call (all but Backup and Restore,
	// which stream), so that a nameserver that hangs (paused, or cut off
	// without a reset) costs a try, not the call: the next try goes to
	// the next member, or to the same one again. Default 10s; 0: no
	// bound but the caller's context. Set it before the first call.
	TryTimeout time.Duration
}

// New returns a client for the nameserver at baseURL ("http://host:port";
// a bare host:port gets "http://"), or, with several comma-separated URLs,
// for a raft group of nameservers; it signs every request with key. A nil
// httpClient means a client of its own that keeps up to 128 idle
// connections to each nameserver.
func New(baseURL string, key auth.Key, httpClient *http.Client) *Client {
	return newClient(baseURL, key, httpClient, nil)
}

// NewTLS is New for nameservers that serve mutual TLS: a bare host:port
// gets "https://", and the client's own transport presents tc's
// certificate and verifies the nameserver's against the cluster CA. A nil
// tc is New(baseURL, key, nil).
func NewTLS(baseURL string, key auth.Key, tc *tlsconf.Cluster) *Client {
	return newClient(baseURL, key, nil, tc)
}

// Local is a nameserver in the client's own process, as in depot server.
// While it leads, GetObject, Bucket and PutObject, the calls on the path
// of every S3 GET, HEAD and PUT, go to it directly: no HTTP, no JSON
// between the two, no signature. The
// caller holds the cluster key and may make these calls anyway; the
// answers are the nameserver's own, so nothing is cached or stale. When
// it does not lead (a raft group was formed around it), the calls go over
// HTTP to the leader as always.
//
// The context of Local.PutObject carries the call's request id
// (RequestID), which the nameserver applies as it does the header's.
type Local interface {
	IsLeader() bool
	GetObject(ctx context.Context, bucket, key string) (depot.Object, error)
	Bucket(ctx context.Context, name string) (Bucket, error)
	PutObject(ctx context.Context, o depot.Object) (PutResult, error)
}

// WithLocal makes c call l directly where it can (see Local) and returns
// c. Call it before c is first used.
func (c *Client) WithLocal(l Local) *Client {
	c.local = l
	return c
}

func newClient(baseURL string, key auth.Key, httpClient *http.Client, tc *tlsconf.Cluster) *Client {
	var bases []string
	for _, b := range strings.Split(baseURL, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		bases = append(bases, normalize(b, tc))
	}
	if len(bases) == 0 {
		bases = []string{normalize(baseURL, tc)}
	}
	if httpClient == nil {
		// Not http.DefaultClient: its two idle connections per host would
		// make a busy gateway open and close a connection per request.
		tr := tc.Transport()
		tr.MaxIdleConnsPerHost = 128
		httpClient = &http.Client{Transport: tr}
	}
	return &Client{bases: bases, key: key, hc: httpClient, RetryFor: 15 * time.Second, TryTimeout: 10 * time.Second}
}

// CloseIdleConnections closes the idle connections of the client's
// transport (for a client that is no longer used).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// normalize makes u a base URL: a bare host:port gets http:// (https://
// with tc).
func normalize(u string, tc *tlsconf.Cluster) string {
	if !strings.Contains(u, "://") {
		u = tc.URL(u)
	}
	return strings.TrimRight(u, "/")
}

// base returns the member in use.
func (c *Client) base() (int64, string) {
	i := c.cur.Load()
	return i, c.bases[int(i)%len(c.bases)]
}

// follow moves to the leader a member named, when it is one of ours.
func (c *Client) follow(leader string) {
	if leader == "" || len(c.bases) == 1 {
		return
	}
	for i, b := range c.bases {
		if b == leader {
			c.cur.Store(int64(i))
			return
		}
	}
}

// retryable reports whether err (from one try) calls for another try: a
// member that could not be reached or whose answer was lost, an answer of
// NoLeader, or an unknown outcome (retried under the same request id).
func retryable(err error) bool {
	var re *httpx.RemoteError
	if errors.As(err, &re) {
		return errors.Is(err, depot.ErrNoLeader) || errors.Is(err, depot.ErrUnknownOutcome)
	}
	return true
}

// mayHaveReached reports whether a try that failed with err may have been
// applied by a nameserver: anything but an answer that says otherwise or a
// connection that was never made.
func mayHaveReached(err error) bool {
	var re *httpx.RemoteError
	if errors.As(err, &re) {
		return errors.Is(err, depot.ErrUnknownOutcome)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return !errors.Is(err, httpx.ErrNoHandler)
}

// send runs one request, moving between members and retrying as the type
// comment says. newBody returns a fresh body for each try (nil: none).
func (c *Client) send(ctx context.Context, method, path string, query url.Values, contentType string,
	newBody func() io.Reader) (*http.Response, error) {
	mutating := method != http.MethodGet && method != http.MethodHead
	var id string
	if mutating {
		ctx, id = ensureRequestID(ctx)
	}
	deadline := time.Now().Add(c.RetryFor)
	backoff := 10 * time.Millisecond
	unknown := false // a try of this mutating call may have been applied
	for {
		i, base := c.base()
		u := base + path
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		var body io.Reader
		if newBody != nil {
			body = newBody()
		}
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if c.TryTimeout > 0 && path != "/backup" && path != "/restore" {
			tctx, cancel = context.WithTimeout(ctx, c.TryTimeout)
		}
		req, err := http.NewRequestWithContext(tctx, method, u, body)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("nsclient: %w", err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if id != "" {
			req.Header.Set(HeaderRequestID, id)
		}
		c.key.Sign(req)
		resp, err := c.hc.Do(req)
		if err == nil {
			c.follow(resp.Header.Get(nameserverLeaderHeader))
			if resp.StatusCode/100 == 2 {
				resp.Body = cancelOnClose{resp.Body, cancel}
				return resp, nil
			}
			err = httpx.ReadError(resp)
			resp.Body.Close()
		}
		cancel()
		unknown = unknown || (mutating && mayHaveReached(err))
		err = fmt.Errorf("nsclient: %s %s: %w", method, path, err)
		if !retryable(err) || ctx.Err() != nil || time.Now().After(deadline) {
			// A refusal answered by the state machine is definite even
			// after a lost try: the repeat carried the same request id,
			// so it got the recorded result had the lost try been applied.
			if unknown && retryable(err) && !errors.Is(err, depot.ErrUnknownOutcome) {
				err = fmt.Errorf("%w: %w", depot.ErrUnknownOutcome, err)
			}
			return nil, err
		}
		c.cur.CompareAndSwap(i, i+1)
		select {
		case <-ctx.Done():
			if unknown && !errors.Is(err, depot.ErrUnknownOutcome) {
				err = fmt.Errorf("%w: %w", depot.ErrUnknownOutcome, err)
			}
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// cancelOnClose ends a try's context when its answer's body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// nameserverLeaderHeader is nameserver.HeaderLeader (this package imports
// nothing of the nameserver).
const nameserverLeaderHeader = "Depot-Nameserver-Leader"

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var newBody func() io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("nsclient: encode: %w", err)
		}
		newBody = func() io.Reader { return bytes.NewReader(b) }
		ct = "application/json"
	}
	resp, err := c.send(ctx, method, path, query, ct, newBody)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("nsclient: %s %s: decode: %w", method, path, err)
	}
	return nil
}

// Assign leases count needle ids in a writable volume of scheme k+m
// (0, 0: the nameserver's default). It fails with depot.ErrNotEnoughNodes
// when no volume can be placed.
func (c *Client) Assign(ctx context.Context, k, m, count int) (Assignment, error) {
	var a Assignment
	err := c.do(ctx, http.MethodPost, "/assign", nil, AssignRequest{K: k, M: m, Count: count}, &a)
	return a, err
}

// Volume returns a volume with its members' current addresses, or an error
// wrapping depot.ErrNotFound.
func (c *Client) Volume(ctx context.Context, id depot.VolumeID) (depot.Volume, error) {
	var v depot.Volume
	err := c.do(ctx, http.MethodGet, "/volumes/"+strconv.FormatUint(uint64(id), 10), nil, nil, &v)
	return v, err
}

// Volumes returns every volume.
func (c *Client) Volumes(ctx context.Context) ([]depot.Volume, error) {
	var l VolumeList
	err := c.do(ctx, http.MethodGet, "/volumes", nil, nil, &l)
	return l.Volumes, err
}

// SetVolumeState marks a volume full, writable, degraded or repairing.
func (c *Client) SetVolumeState(ctx context.Context, id depot.VolumeID, state depot.VolumeState) error {
	return c.do(ctx, http.MethodPost, "/volumes/"+strconv.FormatUint(uint64(id), 10)+"/state", nil,
		VolumeStateRequest{State: state}, nil)
}

// Missed records shards of fid that did not acknowledge a write.
func (c *Client) Missed(ctx context.Context, fid depot.Fid, shards []int) error {
	return c.do(ctx, http.MethodPost, "/missed", nil, MissedWrite{Fid: fid.String(), Shards: shards}, nil)
}

// MissedWrites returns up to limit recorded missed writes (0: the server's
// maximum).
func (c *Client) MissedWrites(ctx context.Context, limit int) ([]MissedWrite, error) {
	var l MissedList
	err := c.do(ctx, http.MethodGet, "/missed", limitQuery(limit), nil, &l)
	return l.Missed, err
}

// ClearMissed forgets repaired missed writes.
func (c *Client) ClearMissed(ctx context.Context, fids []string) error {
	return c.do(ctx, http.MethodDelete, "/missed", nil, FidList{Fids: fids}, nil)
}

// PendingDeletes returns up to limit queued segment deletions, oldest first.
func (c *Client) PendingDeletes(ctx context.Context, limit int) ([]PendingDelete, error) {
	var l DeleteList
	err := c.do(ctx, http.MethodGet, "/deletes", limitQuery(limit), nil, &l)
	return l.Deletes, err
}

// AckDeletes removes done entries from the delete queue.
func (c *Client) AckDeletes(ctx context.Context, seqs []uint64) error {
	return c.do(ctx, http.MethodPost, "/deletes/ack", nil, SeqList{Seqs: seqs}, nil)
}

func limitQuery(limit int) url.Values {
	if limit <= 0 {
		return nil
	}
	return url.Values{"limit": {strconv.Itoa(limit)}}
}

// CreateBucket creates a bucket; depot.ErrExists when it exists.
func (c *Client) CreateBucket(ctx context.Context, name string) (Bucket, error) {
	var b Bucket
	err := c.do(ctx, http.MethodPut, "/buckets/"+url.PathEscape(name), nil, nil, &b)
	return b, err
}

// Bucket returns a bucket, or an error wrapping depot.ErrNotFound.
func (c *Client) Bucket(ctx context.Context, name string) (Bucket, error) {
	if l := c.local; l != nil && l.IsLeader() {
		return l.Bucket(ctx, name)
	}
	var b Bucket
	err := c.do(ctx, http.MethodGet, "/buckets/"+url.PathEscape(name), nil, nil, &b)
	return b, err
}

// Buckets returns every bucket, by name.
func (c *Client) Buckets(ctx context.Context) ([]Bucket, error) {
	var l BucketList
	err := c.do(ctx, http.MethodGet, "/buckets", nil, nil, &l)
	return l.Buckets, err
}

// DeleteBucket deletes an empty bucket: depot.ErrNotEmpty while it has
// keys, depot.ErrNotFound when it does not exist.
func (c *Client) DeleteBucket(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/buckets/"+url.PathEscape(name), nil, nil, nil)
}

func keyQuery(key string) url.Values { return url.Values{"key": {key}} }

// PutObject switches o.Bucket/o.Key to o atomically. It returns the
// replaced object's segments, which the nameserver has already queued for
// deletion. Retried under one request id (see Client), it is applied at
// most once. With o.Precondition it fails with depot.ErrPrecondition (or
// depot.ErrNotFound for IfMatch on a missing key) when the condition does
// not hold; see Refused for which errors mean "not applied".
func (c *Client) PutObject(ctx context.Context, o depot.Object) ([]depot.Segment, error) {
	r, err := c.PutObjectVersion(ctx, o)
	return r.Replaced, err
}

// PutObjectVersion is PutObject that also returns the version the write
// made (PutResult.VersionID).
func (c *Client) PutObjectVersion(ctx context.Context, o depot.Object) (PutResult, error) {
	ctx, _ = ensureRequestID(ctx)
	if l := c.local; l != nil && l.IsLeader() {
		r, err := l.PutObject(ctx, o)
		if !errors.Is(err, depot.ErrNoLeader) {
			return r, err
		}
		// It lost office meanwhile: ask the leader, under the same id.
	}
	var r PutResult
	err := c.do(ctx, http.MethodPut, "/objects/"+url.PathEscape(o.Bucket), keyQuery(o.Key), o, &r)
	return r, err
}

// GetObject returns an object's metadata, or an error wrapping
// depot.ErrNotFound.
func (c *Client) GetObject(ctx context.Context, bucket, key string) (depot.Object, error) {
	if l := c.local; l != nil && l.IsLeader() {
		return l.GetObject(ctx, bucket, key)
	}
	var o depot.Object
	err := c.do(ctx, http.MethodGet, "/objects/"+url.PathEscape(bucket), keyQuery(key), nil, &o)
	return o, err
}

// DeleteObject removes a key and returns its segments, already queued for
// deletion; depot.ErrNotFound when there is no such key. In a bucket with
// versioning it deletes as S3 does (DeleteVersion with no version).
func (c *Client) DeleteObject(ctx context.Context, bucket, key string) ([]depot.Segment, error) {
	r, err := c.DeleteVersion(ctx, bucket, key, nil, false)
	return r.Deleted, err
}

// DeleteVersion deletes as S3's DeleteObject: with version (S3's names:
// "null" for the null version) that one version, depot.ErrNotFound when
// there is no such version; without, the key, which in a bucket with
// versioning becomes a delete marker. A version under Object Lock is
// depot.ErrLocked; bypass lifts a GOVERNANCE retention.
func (c *Client) DeleteVersion(ctx context.Context, bucket, key string, version *string, bypass bool) (DeleteResult, error) {
	q := keyQuery(key)
	if version != nil {
		q.Set("version", *version)
	}
	if bypass {
		q.Set("bypass", "true")
	}
	var r DeleteResult
	err := c.do(ctx, http.MethodDelete, "/objects/"+url.PathEscape(bucket), q, nil, &r)
	return r, err
}

// GetObjectVersion returns version vid of a key (S3's names: "null" for
// the null version; "" for the current version, which may be a delete
// marker), or an error wrapping depot.ErrNotFound.
func (c *Client) GetObjectVersion(ctx context.Context, bucket, key, vid string) (depot.Object, error) {
	q := keyQuery(key)
	q.Set("version", vid)
	var o depot.Object
	err := c.do(ctx, http.MethodGet, "/objects/"+url.PathEscape(bucket), q, nil, &o)
	return o, err
}

// SetLock changes the Object Lock of one version of a key (version ""
// is the current one, "null" the null version); depot.ErrLocked when the
// version's retention forbids the change.
func (c *Client) SetLock(ctx context.Context, bucket, key, version string, r LockRequest) error {
	q := keyQuery(key)
	q.Set("version", version)
	return c.do(ctx, http.MethodPost, "/lock/"+url.PathEscape(bucket), q, r, nil)
}

// ListVersions returns one page of a bucket's versions (see
// VersionListOptions).
func (c *Client) ListVersions(ctx context.Context, bucket string, o VersionListOptions) (VersionList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": o.Prefix, "key_marker": o.KeyMarker,
		"version_marker": o.VersionIDMarker, "delimiter": o.Delimiter} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var r VersionList
	err := c.do(ctx, http.MethodGet, "/versions/"+url.PathEscape(bucket), q, nil, &r)
	return r, err
}

// List returns one page of keys; see ListOptions and ListResult.
func (c *Client) List(ctx context.Context, bucket string, o ListOptions) (ListResult, error) {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Delimiter != "" {
		q.Set("delimiter", o.Delimiter)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var r ListResult
	err := c.do(ctx, http.MethodGet, "/list/"+url.PathEscape(bucket), q, nil, &r)
	return r, err
}

// Status returns the nameserver's status report.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/status", nil, nil, &s)
	return s, err
}

// Ready returns nil when the nameserver answers /readyz with 200 (it sees
// enough alive dataservers to place a volume), else an error saying why.
func (c *Client) Ready(ctx context.Context) error {
	_, base := c.base()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("nsclient: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("nsclient: readyz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("nameserver not ready: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// Nameservers lists the members of the nameserver raft group.
func (c *Client) Nameservers(ctx context.Context) ([]NameserverInfo, error) {
	var l NameserverList
	err := c.do(ctx, http.MethodGet, "/nameservers", nil, nil, &l)
	return l.Nameservers, err
}

// AddNameserver adds a member (id, raft address) to the raft group.
func (c *Client) AddNameserver(ctx context.Context, id, raftAddr string) error {
	return c.do(ctx, http.MethodPost, "/nameservers", nil, NameserverInfo{ID: id, RaftAddr: raftAddr}, nil)
}

// RemoveNameserver removes a member from the raft group.
func (c *Client) RemoveNameserver(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/nameservers/"+url.PathEscape(id), nil, nil, nil)
}

// Backup writes a consistent copy of the nameserver's database to w and
// returns its size.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/backup", nil, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("nsclient: backup: %w", err)
	}
	return n, nil
}

// RestoreResult is the answer to POST /restore.
type RestoreResult struct {
	// BackupTime is when the backup was taken; zero for a backup from
	// before backups recorded it.
	BackupTime time.Time `json:"backup_time,omitzero"`
	// Age is how old the backup was when restored (nanoseconds).
	Age time.Duration `json:"age"`
	// DeleteGrace is the nameserver's delete grace (nanoseconds):
	// segments deleted or overwritten longer ago than that may be gone
	// from the dataservers.
	DeleteGrace time.Duration `json:"delete_grace"`
	// Whole is true when the backup is younger than the delete grace:
	// every object it holds still has its data.
	Whole bool `json:"whole"`
	// Warning says why the restore may not be whole, when it may not.
	Warning string `json:"warning,omitempty"`
	// LockedRewound counts the object versions under Object Lock that
	// the restore took out of the namespace (written after the backup).
	LockedRewound int `json:"locked_rewound,omitempty"`
	// Restored counts the restores the database went through, this one
	// included.
	Restored uint64 `json:"restored"`
}

// Restore rewinds the nameserver's namespace to a backup read from the
// file at path (re-read on a retry), keeping the placement of shards of
// now, and returns what the nameserver said of it.
func (c *Client) Restore(ctx context.Context, path string) (RestoreResult, error) {
	var res RestoreResult
	var open []*os.File
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	var openErr error
	resp, err := c.send(ctx, http.MethodPost, "/restore", nil, "application/octet-stream", func() io.Reader {
		f, err := os.Open(path)
		if err != nil {
			openErr = err
			return bytes.NewReader(nil)
		}
		open = append(open, f)
		return f
	})
	if openErr != nil {
		return res, fmt.Errorf("nsclient: restore: %w", openErr)
	}
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return res, nil // a nameserver from before the answer had a body
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("nsclient: restore: %w", err)
	}
	return res, nil
}
