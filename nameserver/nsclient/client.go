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
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"depot"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
)

// Client calls one nameserver. It is safe for concurrent use.
type Client struct {
	base string
	key  auth.Key
	hc   *http.Client
}

// New returns a client for the nameserver at baseURL ("http://host:port";
// a bare host:port gets "http://"), signing every request with key. A nil
// httpClient means a client of its own that keeps up to 128 idle
// connections to the nameserver.
func New(baseURL string, key auth.Key, httpClient *http.Client) *Client {
	return newClient(baseURL, key, httpClient, nil)
}

// NewTLS is New for a nameserver that serves mutual TLS: a bare host:port
// gets "https://", and the client's own transport presents tc's
// certificate and verifies the nameserver's against the cluster CA. A nil
// tc is New(baseURL, key, nil).
func NewTLS(baseURL string, key auth.Key, tc *tlsconf.Cluster) *Client {
	return newClient(baseURL, key, nil, tc)
}

func newClient(baseURL string, key auth.Key, httpClient *http.Client, tc *tlsconf.Cluster) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = tc.URL(baseURL)
	}
	if httpClient == nil {
		// Not http.DefaultClient: its two idle connections per host would
		// make a busy gateway open and close a connection per request.
		tr := tc.Transport()
		tr.MaxIdleConnsPerHost = 128
		httpClient = &http.Client{Transport: tr}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), key: key, hc: httpClient}
}

// CloseIdleConnections closes the idle connections of the client's
// transport (for a client that is no longer used).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("nsclient: encode: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("nsclient: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.key.Sign(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("nsclient: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("nsclient: %s %s: %w", method, path, httpx.ReadError(resp))
	}
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
// deletion.
func (c *Client) PutObject(ctx context.Context, o depot.Object) ([]depot.Segment, error) {
	var r PutResult
	err := c.do(ctx, http.MethodPut, "/objects/"+url.PathEscape(o.Bucket), keyQuery(o.Key), o, &r)
	return r.Replaced, err
}

// GetObject returns an object's metadata, or an error wrapping
// depot.ErrNotFound.
func (c *Client) GetObject(ctx context.Context, bucket, key string) (depot.Object, error) {
	var o depot.Object
	err := c.do(ctx, http.MethodGet, "/objects/"+url.PathEscape(bucket), keyQuery(key), nil, &o)
	return o, err
}

// DeleteObject removes a key and returns its segments, already queued for
// deletion; depot.ErrNotFound when there is no such key.
func (c *Client) DeleteObject(ctx context.Context, bucket, key string) ([]depot.Segment, error) {
	var r DeleteResult
	err := c.do(ctx, http.MethodDelete, "/objects/"+url.PathEscape(bucket), keyQuery(key), nil, &r)
	return r.Deleted, err
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
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
