package nameserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// lossyProxy is a real HTTP proxy in front of a nameserver that loses the
// answer of the first try of every mutating request: it forwards the
// request, lets the nameserver apply it, and then breaks the connection
// instead of answering. It records the request id of every try.
type lossyProxy struct {
	t        *testing.T
	upstream string
	mu       sync.Mutex
	seen     map[string]int // "METHOD path id" → tries
	ids      []string       // request id of every mutating try, in order
	loseAll  bool           // lose every answer, not only the first
	stall    bool           // hold a lost answer until the client gives up the try
}

func newLossyProxy(t *testing.T, upstream string) *httptest.Server {
	p := &lossyProxy{t: t, upstream: upstream, seen: map[string]int{}}
	return serveProxy(t, p)
}

func serveProxy(t *testing.T, p *lossyProxy) *httptest.Server {
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	lose := false
	if r.Method != http.MethodGet {
		id := r.Header.Get(nsclient.HeaderRequestID)
		p.mu.Lock()
		k := r.Method + " " + r.URL.Path + " " + id
		p.seen[k]++
		lose = p.seen[k] == 1 || p.loseAll
		p.ids = append(p.ids, id)
		p.mu.Unlock()
	}
	if lose && p.stall {
		// The nameserver applied it; the answer never comes.
		<-r.Context().Done()
		return
	}
	if lose {
		// The nameserver applied it; the client never hears so.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

// TestRequests_LostAnswersApplyOnce loses the answer of the first try of
// every mutating call: nsclient tries again under the same request id, and
// the nameserver answers with the recorded result instead of applying the
// call a second time. Before request ids, the lost answer was an error with
// one nameserver, and a repeat was applied again (a second CreateUpload or
// CreateBucket answered Exists, a second DeleteObject NotFound).
func TestRequests_LostAnswersApplyOnce(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	proxy := newLossyProxy(t, c.srv.URL())
	cl := nsclient.New(proxy.URL, c.key, nil)
	cl.RetryFor = 10 * time.Second

	b, err := cl.CreateBucket(ctx, "shop")
	if err != nil || b.Name != "shop" {
		t.Fatalf("CreateBucket = %+v, %v", b, err)
	}
	u, err := cl.CreateUpload(ctx, nsclient.Upload{Bucket: "shop", Key: "big", ID: "up1"})
	if err != nil || u.ID != "up1" {
		t.Fatalf("CreateUpload = %+v, %v", u, err)
	}
	part := nsclient.Part{Number: 1, ETag: "p1", Size: 7, Segments: segs(fid(1, 1))}
	replaced, err := cl.PutPart(ctx, "shop", "big", "up1", part)
	if err != nil || len(replaced) != 0 {
		t.Fatalf("PutPart: replaced %v, %v", replaced, err)
	}
	if _, err := cl.CompleteUpload(ctx, "shop", "big", "up1", nsclient.CompleteRequest{
		Parts: []nsclient.CompletePart{{Number: 1, ETag: "p1"}}, ETag: "big-1"}); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	if q, err := c.client.PendingDeletes(ctx, 0); err != nil || len(q) != 0 {
		t.Fatalf("delete queue after the multipart upload: %+v, %v", q, err)
	}
	// An overwrite: the replaced segments are answered (recorded), and
	// queued once.
	replaced, err = cl.PutObject(ctx, object("shop", "big", 2, 9))
	if err != nil || len(replaced) != 1 || replaced[0].Fid != fid(1, 1) {
		t.Fatalf("PutObject: replaced %+v, %v", replaced, err)
	}
	q, err := c.client.PendingDeletes(ctx, 0)
	if err != nil || len(q) != 1 || q[0].Fid != fid(1, 1) {
		t.Fatalf("delete queue after the overwrite: %+v, %v", q, err)
	}
	deleted, err := cl.DeleteObject(ctx, "shop", "big")
	if err != nil || len(deleted) != 1 || deleted[0].Fid != fid(1, 2) {
		t.Fatalf("DeleteObject: deleted %+v, %v", deleted, err)
	}
	if _, err := cl.CreateUpload(ctx, nsclient.Upload{Bucket: "shop", Key: "gone", ID: "up2"}); err != nil {
		t.Fatal(err)
	}
	if err := cl.AbortUpload(ctx, "shop", "gone", "up2"); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	st, err := c.client.Status(ctx)
	if err != nil || st.Objects != 0 {
		t.Fatalf("status %+v, %v", st, err)
	}

	p := proxy.Config.Handler.(*lossyProxy)
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, n := range p.seen {
		if n != 2 {
			t.Errorf("%s: %d tries, want 2 (one lost, one answered)", k, n)
		}
		if strings.HasSuffix(k, " ") {
			t.Errorf("%s: no request id", k)
		}
	}
	if len(p.seen) != 8 {
		t.Errorf("%d distinct calls, want 8 (a fresh id per call): %v", len(p.seen), p.seen)
	}
}

// TestRequests_RepeatGetsRecordedResult proposes each command twice under
// one request id: the repeat answers the first result, with the same Go
// type, and changes nothing. A refused command records nothing.
func TestRequests_RepeatGetsRecordedResult(t *testing.T) {
	st := mustStore(t, 0)
	n := 0
	twice := func(typ CommandType, payload any) any {
		t.Helper()
		n++
		ctx := nsclient.WithRequestID(ctxT(t), "req-"+string(typ)+"-"+string(rune('a'+n)))
		first, err := st.propose(ctx, typ, payload)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		again, err := st.propose(ctx, typ, payload)
		if err != nil {
			t.Fatalf("%s repeated: %v", typ, err)
		}
		if reflect.TypeOf(first) != reflect.TypeOf(again) {
			t.Fatalf("%s: result %T, repeat %T", typ, first, again)
		}
		a, _ := json.Marshal(first)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: result %s, repeat %s", typ, a, b)
		}
		return first
	}
	ctx := ctxT(t)
	vol := depot.Volume{K: 1, M: 0, Unit: 1024, Members: []depot.Member{{Index: 0, Node: "n1", Addr: "127.0.0.1:1"}}}
	a := twice(CmdAssign, assignCmd{Create: &vol, Count: 5}).(nsclient.Assignment)
	next, err := st.propose(ctx, CmdAssign, assignCmd{Volume: a.Volume.ID, Count: 1})
	if err != nil || next.(nsclient.Assignment).First != a.First+5 {
		t.Fatalf("lease after a repeated assign: %+v, %v (first lease %+v): leased twice", next, err, a)
	}
	twice(CmdCreateBucket, bucketCmd{Name: "shop"})
	pub := true
	twice(CmdSetBucket, setBucketCmd{Name: "shop", Settings: nsclient.BucketSettings{Public: &pub}})
	twice(CmdPutObject, object("shop", "k", 1, 10))
	twice(CmdPutObject, object("shop", "k", 2, 10)) // replaces needle 1, once
	twice(CmdCreateUpload, nsclient.Upload{Bucket: "shop", Key: "m", ID: "u1"})
	twice(CmdPutPart, putPartCmd{uploadKeyCmd{"shop", "m", "u1"}, nsclient.Part{Number: 1, ETag: "e", Size: 7, Segments: segs(fid(1, 9))}})
	twice(CmdCompleteUpload, completeUploadCmd{uploadKeyCmd{"shop", "m", "u1"},
		nsclient.CompleteRequest{Parts: []nsclient.CompletePart{{Number: 1, ETag: "e"}}, ETag: "m-1"}})
	twice(CmdDeleteObject, objectKeyCmd{Bucket: "shop", Key: "k"}) // queues needle 2, once
	twice(CmdSweepOrphans, nsclient.OrphanList{Segments: segs(fid(1, 20))})
	twice(CmdAckDeletes, nsclient.SeqList{Seqs: []uint64{1000}})

	var queued []string
	err = st.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktDeletes).ForEach(func(_, v []byte) error {
			var pd nsclient.PendingDelete
			if err := json.Unmarshal(v, &pd); err != nil {
				return err
			}
			queued = append(queued, pd.Fid)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(queued)
	want := []string{fid(1, 1), fid(1, 2), fid(1, 20)}
	slices.Sort(want)
	if !slices.Equal(queued, want) {
		t.Fatalf("delete queue %v, want %v (each released segment once)", queued, want)
	}

	// A refused command records nothing: its repeat is judged afresh.
	rctx := nsclient.WithRequestID(ctx, "refused-then-ok")
	if _, err := st.propose(rctx, CmdDeleteObject, objectKeyCmd{Bucket: "shop", Key: "later"}); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("delete of a missing key: %v", err)
	}
	if _, err := st.propose(ctx, CmdPutObject, object("shop", "later", 30, 4)); err != nil {
		t.Fatal(err)
	}
	res, err := st.propose(rctx, CmdDeleteObject, objectKeyCmd{Bucket: "shop", Key: "later"})
	if err != nil || len(res.(nsclient.DeleteResult).Deleted) != 1 {
		t.Fatalf("repeat of a refused delete: %+v, %v", res, err)
	}
}

// TestRequests_Pruned applies commands at chosen times: records older than
// RequestRetention go as later commands are recorded, and a repeat after
// that is applied afresh.
func TestRequests_Pruned(t *testing.T) {
	st, err := openStore(t.TempDir()+"/"+DBFile, 0, 16, newMetrics(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := func(at time.Time, id string, typ CommandType, payload any) error {
		t.Helper()
		data, _ := json.Marshal(payload)
		r := &request{cmd: Command{Type: typ, Time: at, Data: data, ID: id}}
		if err := st.applyBatch([]*request{r}); err != nil {
			t.Fatal(err)
		}
		return r.err
	}
	if err := run(t0, "b", CmdCreateBucket, bucketCmd{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := run(t0.Add(time.Duration(i)*time.Second), "old"+string(rune('0'+i)), CmdPutObject, object("shop", "k", 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	records := func() []string {
		var out []string
		st.db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket(bktRequests).ForEach(func(k, _ []byte) error {
				out = append(out, string(bytes.ReplaceAll(k, []byte{0}, []byte("/"))))
				return nil
			})
		})
		slices.Sort(out)
		return out
	}
	if got := records(); len(got) != 4 {
		t.Fatalf("records %v", got)
	}
	// Within the retention the repeat is answered from the record.
	if err := run(t0.Add(RequestRetention-time.Minute), "b", CmdCreateBucket, bucketCmd{Name: "shop"}); err != nil {
		t.Fatalf("repeat within the retention: %v", err)
	}
	// One command recorded after the retention prunes the expired ones.
	later := t0.Add(RequestRetention + time.Hour)
	if err := run(later, "new", CmdPutObject, object("shop", "k2", 5, 10)); err != nil {
		t.Fatal(err)
	}
	if got, want := records(), []string{"new/put_object"}; !slices.Equal(got, want) {
		t.Fatalf("records after the retention %v, want %v", got, want)
	}
	err = st.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bktRequestTimes).Stats().KeyN; n != 1 {
			t.Errorf("time index holds %d keys, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(later, "b", CmdCreateBucket, bucketCmd{Name: "shop"}); !errors.Is(err, depot.ErrExists) {
		t.Fatalf("repeat after the retention: %v, want it applied afresh (Exists)", err)
	}

	// Completed uploads are kept as long, and pruned alike.
	complete := func(at time.Time, id string, needle uint64) {
		t.Helper()
		u := uploadKeyCmd{"shop", "m", id}
		for _, step := range []struct {
			typ     CommandType
			payload any
		}{
			{CmdCreateUpload, nsclient.Upload{Bucket: "shop", Key: "m", ID: id}},
			{CmdPutPart, putPartCmd{u, nsclient.Part{Number: 1, ETag: "e", Size: 7, Segments: segs(fid(1, needle))}}},
			{CmdCompleteUpload, completeUploadCmd{u, nsclient.CompleteRequest{Parts: []nsclient.CompletePart{{Number: 1, ETag: "e"}}, ETag: id}}},
		} {
			if err := run(at, "", step.typ, step.payload); err != nil {
				t.Fatalf("%s: %v", step.typ, err)
			}
		}
	}
	completed := func() (n int) {
		st.db.View(func(tx *bbolt.Tx) error {
			n = tx.Bucket(bktCompleted).Stats().KeyN
			if m := tx.Bucket(bktCompletedTimes).Stats().KeyN; m != n {
				t.Errorf("%d completed records, %d time entries", n, m)
			}
			return nil
		})
		return n
	}
	complete(later, "up1", 40)
	complete(later.Add(time.Minute), "up2", 41)
	if n := completed(); n != 2 {
		t.Fatalf("%d completed records, want 2", n)
	}
	complete(later.Add(RequestRetention+time.Hour), "up3", 42)
	if n := completed(); n != 1 {
		t.Fatalf("%d completed records after the retention, want 1", n)
	}
}

// TestPropose_HandedOverIsUnknown cancels a proposer whose command the
// committer already took: the error says the outcome is unknown, and the
// command is applied all the same. Before, propose returned the bare
// context error, which callers took for a refusal.
func TestPropose_HandedOverIsUnknown(t *testing.T) {
	st := mustStore(t, 0)
	hold, err := st.db.Begin(true) // the committer blocks on the next transaction
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := st.propose(ctx, CmdCreateBucket, bucketCmd{Name: "late"})
		errc <- err
	}()
	// Wait until the committer took the command and waits for bbolt.
	waitFor(t, 10*time.Second, "the committer blocked in a write transaction", func() bool {
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("beginRWTx"))
	})
	cancel()
	err = <-errc
	if !errors.Is(err, depot.ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Fatalf("propose after hand-over: %v, want ErrUnknownOutcome wrapping context.Canceled", err)
	}
	hold.Rollback()
	waitFor(t, 10*time.Second, "the handed-over command applied", func() bool {
		found := false
		st.db.View(func(tx *bbolt.Tx) error {
			found = tx.Bucket(bktBuckets).Get([]byte("late")) != nil
			return nil
		})
		return found
	})
}

// TestRequests_LocalCarriesTheID calls PutObject through nsclient.Local (a
// nameserver in the caller's process, as in depot server) twice under one
// request id: the repeat answers the first call's replaced segments and
// queues nothing more. Before, the local path carried no id: the repeat
// was applied again and answered that it replaced nothing.
func TestRequests_LocalCarriesTheID(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := nsclient.New(c.srv.URL(), c.key, nil).WithLocal(c.srv)
	if _, err := cl.CreateBucket(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObject(ctx, object("shop", "k", 1, 10)); err != nil {
		t.Fatal(err)
	}
	rctx := nsclient.WithRequestID(ctx, "overwrite-1")
	for try := range 2 {
		replaced, err := cl.PutObject(rctx, object("shop", "k", 2, 10))
		if err != nil || len(replaced) != 1 || replaced[0].Fid != fid(1, 1) {
			t.Fatalf("try %d: replaced %+v, %v; want %s", try, replaced, err, fid(1, 1))
		}
	}
	if q, err := cl.PendingDeletes(ctx, 0); err != nil || len(q) != 1 {
		t.Fatalf("delete queue %+v, %v", q, err)
	}
}

// TestRequests_GiveUpIsUnknownOutcome: a call whose every answer is lost
// gives up after RetryFor with an error wrapping depot.ErrUnknownOutcome
// (the change was applied here), while a call that never reached a
// nameserver (nothing listens) fails without it: only the first may have
// been applied.
func TestRequests_GiveUpIsUnknownOutcome(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	proxy := serveProxy(t, &lossyProxy{t: t, upstream: c.srv.URL(), seen: map[string]int{}, loseAll: true})
	cl := nsclient.New(proxy.URL, c.key, nil)
	cl.RetryFor = 300 * time.Millisecond
	_, err := cl.CreateBucket(ctx, "lost")
	if !errors.Is(err, depot.ErrUnknownOutcome) {
		t.Fatalf("every answer lost: %v, want ErrUnknownOutcome", err)
	}
	if _, err := c.client.Bucket(ctx, "lost"); err != nil {
		t.Fatalf("the change with the unknown outcome: %v (it was applied)", err)
	}
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.URL
	ln.Close() // nothing listens there now
	down := nsclient.New(addr, c.key, nil)
	down.RetryFor = 300 * time.Millisecond
	if _, err := down.CreateBucket(ctx, "never"); err == nil || errors.Is(err, depot.ErrUnknownOutcome) {
		t.Fatalf("no nameserver: %v, want a definite error", err)
	}
}

// TestRequests_HungTryIsRetried: the first try's answer never comes (a
// paused nameserver, a path that drops packets): the try ends after
// TryTimeout, not the call, and the next try gets the recorded result.
// Before, the call hung until the caller's context ended.
func TestRequests_HungTryIsRetried(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	p := &lossyProxy{t: t, upstream: c.srv.URL(), seen: map[string]int{}, stall: true}
	cl := nsclient.New(serveProxy(t, p).URL, c.key, nil)
	cl.TryTimeout = 300 * time.Millisecond
	cl.RetryFor = 10 * time.Second
	b, err := cl.CreateBucket(ctx, "slow")
	if err != nil || b.Name != "slow" {
		t.Fatalf("CreateBucket = %+v, %v", b, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) != 2 || p.ids[0] != p.ids[1] {
		t.Fatalf("tries with request ids %q, want two with the same id", p.ids)
	}
}
