package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot"
	"depot/gateway/s3"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// holdMode is what nsProxy does with the next object commit.
type holdMode int

const (
	pass       holdMode = iota // forward it and answer
	applyDrop                  // forward it (the nameserver applies it), hold the answer until released, then drop the connection
	dropUnsent                 // hold it until released, then drop the connection without forwarding it
)

// nsProxy is an HTTP proxy on 127.0.0.1 in front of the nameserver API,
// which the gateway under test reaches only through it. It records every
// object commit (PUT /objects/...) and can lose the answer of the next
// one, after or without applying it: what a broken connection, a crashed
// leader or a partition does to a commit.
type nsProxy struct {
	url     string // the proxy's
	target  string // the nameserver's
	hc      *http.Client
	held    chan struct{} // a commit is being held
	release chan struct{} // lets it go (dropped)

	mu      sync.Mutex
	mode    holdMode
	match   func(*http.Request) bool // which request the mode applies to; nil: object commits
	sticky  bool                     // the mode stays armed for every retry until disarmed
	commits []depot.Object
}

func isObjectCommit(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/objects/")
}

func newNSProxy(t *testing.T, target string) *nsProxy {
	p := &nsProxy{target: target, hc: &http.Client{}, held: make(chan struct{}, 1), release: make(chan struct{})}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	t.Cleanup(p.hc.CloseIdleConnections)
	p.url = srv.URL
	return p
}

func (p *nsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	mode := pass
	p.mu.Lock()
	if isObjectCommit(r) {
		var o depot.Object
		if json.Unmarshal(body, &o) == nil {
			p.commits = append(p.commits, o)
		}
	}
	if match := p.match; match == nil && isObjectCommit(r) || match != nil && match(r) {
		mode = p.mode
		if !p.sticky {
			p.mode, p.match = pass, nil
		}
	}
	release, sticky := p.release, p.sticky
	p.mu.Unlock()
	if mode == dropUnsent {
		if !sticky {
			p.hold(release)
		}
		panic(http.ErrAbortHandler)
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	req.Header = r.Header.Clone()
	resp, err := p.hc.Do(req)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	if mode == applyDrop {
		p.hold(release)
		panic(http.ErrAbortHandler)
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// hold tells the test that a request is held and waits for release.
func (p *nsProxy) hold(release chan struct{}) {
	select {
	case p.held <- struct{}{}:
	default:
	}
	<-release
}

// letGo releases the requests held and disarms a sticky mode.
func (p *nsProxy) letGo() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
	if p.sticky {
		p.mode, p.match, p.sticky = pass, nil, false
	}
}

// armSticky makes every object commit, the nameserver client's retries
// included, go as mode says until letGo, without holding: a nameserver
// out of reach for good. Only dropUnsent is meant.
func (p *nsProxy) armSticky(mode holdMode) {
	p.mu.Lock()
	p.mode, p.match, p.sticky = mode, nil, true
	p.mu.Unlock()
}

// arm makes the next object commit go as mode says.
func (p *nsProxy) arm(mode holdMode) { p.armFor(mode, nil) }

// armFor makes the next request that match accepts go as mode says.
func (p *nsProxy) armFor(mode holdMode, match func(*http.Request) bool) {
	p.mu.Lock()
	p.mode, p.match = mode, match
	p.mu.Unlock()
}

// lastCommit returns the last object commit seen.
func (p *nsProxy) lastCommit(t *testing.T) depot.Object {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.commits) == 0 {
		t.Fatal("no commit went through the proxy")
	}
	return p.commits[len(p.commits)-1]
}

// doneTracker wraps a handler and tells when each PUT has been served to
// the end (the gateway's handler returned).
type doneTracker struct {
	h    http.Handler
	done chan string
}

func (d *doneTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		defer func() { d.done <- r.URL.Path }()
	}
	d.h.ServeHTTP(w, r)
}

// waitDone waits for the gateway to finish serving a request.
func (d *doneTracker) waitDone(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatal("the gateway did not finish the request within a minute")
	}
}

// readable reports whether every segment of o can be read whole.
func readable(ctx context.Context, c *testcluster.Cluster, o depot.Object) error {
	var n int64
	for _, sg := range o.Segments {
		n += sg.Size
	}
	rc, err := c.Client().Get(ctx, o.Segments, 0, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// waitNoPendingDeletes polls until the nameserver's delete queue is empty
// (the deletion grace passed and the deleter ran).
func waitNoPendingDeletes(t *testing.T, ctx context.Context, ns *nsclient.Client) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		pend, err := ns.PendingDeletes(ctx, 100)
		if err == nil && len(pend) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delete queue not drained after a minute: %d left, err %v", len(pend), err)
		}
		<-afterTick()
	}
}

// TestS3CommitOutcome overwrites a key through a gateway whose nameserver
// connection loses the commit's answer, while the client disconnects or
// times out. Whatever the client heard, the key then serves the old or
// the new bytes exactly, also after the deletion grace, and the new
// segments are discarded only when the nameserver refused the commit.
func TestS3CommitOutcome(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := ctxT(t)
	proxy := newNSProxy(t, c.Local.NameserverURLs())
	gw := newS3Via(t, c, proxy.url)
	tracked := &doneTracker{h: gw, done: make(chan string, 16)}
	front := httptest.NewServer(tracked)
	t.Cleanup(front.Close)
	u, _ := url.Parse(front.URL)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	direct := mustMinio(t, c) // the cluster's own gateway, to read back
	if err := direct.MakeBucket(ctx, "commits", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := c.NSClient()

	put := func(t *testing.T, cl *minio.Client, ctx context.Context, key string, body []byte) error {
		_, err := cl.PutObject(ctx, "commits", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		return err
	}
	getBody := func(t *testing.T, key string) ([]byte, error) {
		obj, err := direct.GetObject(ctx, "commits", key, minio.GetObjectOptions{})
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		return io.ReadAll(obj)
	}
	// oldOrNew checks that key serves exactly old or new bytes, now and
	// after every queued deletion ran.
	oldOrNew := func(t *testing.T, key string, old, new []byte) []byte {
		t.Helper()
		got, err := getBody(t, key)
		if err != nil {
			t.Fatalf("get %s after the lost commit: %v", key, err)
		}
		if !bytes.Equal(got, old) && !bytes.Equal(got, new) {
			t.Fatalf("get %s: %d bytes, neither the old nor the new version", key, len(got))
		}
		waitNoPendingDeletes(t, ctx, ns)
		again, err := getBody(t, key)
		if err != nil {
			t.Fatalf("get %s after the deletion grace: %v", key, err)
		}
		if !bytes.Equal(again, got) {
			t.Fatalf("get %s after the deletion grace: other bytes", key)
		}
		return got
	}

	for _, tc := range []struct {
		name string
		mode holdMode
		// stop ends the client's request once the commit is held: a
		// disconnect (cancel) or the client's own deadline.
		timeout bool
	}{
		{"AppliedClientDisconnects", applyDrop, false},
		{"AppliedClientTimesOut", applyDrop, true},
		{"NotAppliedClientDisconnects", dropUnsent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := strings.ToLower(tc.name)
			old, new := randBytes(t, 300<<10), randBytes(t, 200<<10)
			if err := put(t, mc, ctx, key, old); err != nil {
				t.Fatal(err)
			}
			tracked.waitDone(t)
			proxy.arm(tc.mode)
			var cctx context.Context
			var cancel context.CancelFunc
			if tc.timeout {
				cctx, cancel = context.WithTimeout(ctx, 2*time.Second)
			} else {
				cctx, cancel = context.WithCancel(ctx)
			}
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- put(t, mc, cctx, key, new) }()
			<-proxy.held
			if !tc.timeout {
				cancel()
			}
			if err := <-errc; err == nil {
				t.Fatal("the client's put succeeded though it gave up")
			}
			commit := proxy.lastCommit(t)
			proxy.letGo()
			tracked.waitDone(t)
			got := oldOrNew(t, key, old, new)
			// The nameserver client retries the lost commit under its
			// request id, so the gateway may resolve it either way; if
			// the key still holds the old bytes, the new segments stay
			// for the orphan sweep, not deleted on a guess.
			if bytes.Equal(got, old) {
				if err := readable(ctx, c, commit); err != nil {
					t.Fatalf("segments of a commit of unknown outcome were discarded: %v", err)
				}
			}
		})
	}

	t.Run("UnknownOutcomeAnswers5xx", func(t *testing.T) {
		old, new := randBytes(t, 100<<10), randBytes(t, 120<<10)
		if err := put(t, mc, ctx, "five", old); err != nil {
			t.Fatal(err)
		}
		tracked.waitDone(t)
		// Every try of the commit is lost, the nameserver client's
		// retries included, until the put has answered.
		proxy.armSticky(dropUnsent)
		err := put(t, mc, ctx, "five", new)
		proxy.letGo()
		tracked.waitDone(t)
		if code := minio.ToErrorResponse(err).StatusCode; code < 500 {
			t.Fatalf("put whose commit was lost: %v (status %d), want a 5xx", err, code)
		}
		oldOrNew(t, "five", old, new)
	})

	t.Run("RefusalDiscards", func(t *testing.T) {
		body := randBytes(t, 150<<10)
		if err := put(t, mc, ctx, "taken", body); err != nil {
			t.Fatal(err)
		}
		tracked.waitDone(t)
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		other := randBytes(t, 150<<10)
		_, err := mc.PutObject(ctx, "commits", "taken", bytes.NewReader(other), int64(len(other)), opts)
		if code := minio.ToErrorResponse(err).Code; code != "PreconditionFailed" {
			t.Fatalf("If-None-Match put on an existing key: %v, want PreconditionFailed", err)
		}
		tracked.waitDone(t)
		refused := proxy.lastCommit(t)
		if len(refused.Segments) == 0 {
			t.Fatal("the refused commit named no segments")
		}
		err = readable(ctx, c, refused)
		if !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("segments of a refused commit: read err %v, want them gone (ErrNotFound)", err)
		}
		if got, err := getBody(t, "taken"); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("key after a refused overwrite: %v", err)
		}
	})
}

// newS3Via returns an S3 front end on c's client whose nameserver client
// calls nsURL.
func newS3Via(t *testing.T, c *testcluster.Cluster, nsURL string) *s3.Server {
	t.Helper()
	nc := nsclient.New(nsURL, c.Key, nil)
	srv, err := s3.New(s3.Config{Client: c.Client(), Namespace: func() (*nsclient.Client, error) { return nc, nil },
		RootUser: c.User, RootPassword: c.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestS3LostNameserverAnswers loses the nameserver's answer to an
// UploadPart's commit, and to a CreateMultipartUpload and an
// AbortMultipartUpload that the nameserver client then retries. Each had
// applied: the gateway finds so (a read-back, the upload id it chose being
// there, the upload it saw being gone) and answers success, and the
// completed object reads back whole after the deletion grace.
func TestS3LostNameserverAnswers(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 5, K: 2, M: 1})
	ctx := ctxT(t)
	proxy := newNSProxy(t, c.Local.NameserverURLs())
	serve := func(nsURL string) *minio.Core {
		front := httptest.NewServer(newS3Via(t, c, nsURL))
		t.Cleanup(front.Close)
		u, _ := url.Parse(front.URL)
		core, err := minio.NewCore(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1", MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		return core
	}
	// One address: a broken connection is not retried. Two: the client
	// tries again (the same proxy twice).
	once, retrying := serve(proxy.url), serve(proxy.url+","+proxy.url)
	if err := once.MakeBucket(ctx, "mpu", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	lose := func(match func(*http.Request) bool, call func() error) error {
		proxy.armFor(applyDrop, match)
		errc := make(chan error, 1)
		go func() { errc <- call() }()
		<-proxy.held
		proxy.letGo()
		return <-errc
	}

	var id string
	err := lose(func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/uploads" }, func() error {
		var err error
		id, err = retrying.NewMultipartUpload(ctx, "mpu", "big", minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("create upload whose first answer was lost: %v", err)
	}
	// An abort whose answer is lost and that the client retries.
	doomed, err := once.NewMultipartUpload(ctx, "mpu", "doomed", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = lose(func(r *http.Request) bool {
		return r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/uploads/")
	}, func() error {
		return retrying.AbortMultipartUpload(ctx, "mpu", "doomed", doomed)
	})
	if err != nil {
		t.Fatalf("abort whose first answer was lost: %v", err)
	}
	if err := once.AbortMultipartUpload(ctx, "mpu", "doomed", doomed); minio.ToErrorResponse(err).Code != "NoSuchUpload" {
		t.Fatalf("abort of an upload already gone: %v, want NoSuchUpload", err)
	}

	part1, part2 := randBytes(t, 5<<20), randBytes(t, 100<<10)
	var p1 minio.ObjectPart
	err = lose(func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/parts/")
	}, func() error {
		var err error
		p1, err = once.PutObjectPart(ctx, "mpu", "big", id, 1, bytes.NewReader(part1), int64(len(part1)), minio.PutObjectPartOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("part whose commit's answer was lost: %v", err)
	}
	p2, err := once.PutObjectPart(ctx, "mpu", "big", id, 2, bytes.NewReader(part2), int64(len(part2)), minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := once.CompleteMultipartUpload(ctx, "mpu", "big", id, []minio.CompletePart{
		{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNoPendingDeletes(t, ctx, c.NSClient())
	direct := mustMinio(t, c)
	obj, err := direct.GetObject(ctx, "mpu", "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, append(part1, part2...)) {
		t.Fatalf("completed object: %d bytes, %v", len(got), err)
	}
}
