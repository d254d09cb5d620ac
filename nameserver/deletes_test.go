package nameserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/auth"
	"depot/internal/membership"
	"depot/nameserver/nsclient"
)

// TestPutPart_ReplayKeepsItsSegments applies the same PutPart twice, as a
// replay does (nsclient retrying NoLeader, a follower's lost proxy answer):
// the part's segments stay referenced and nothing is queued for deletion.
// Before, the replay queued the part's own segments, and the completed
// object lost that part a minute later.
func TestPutPart_ReplayKeepsItsSegments(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	st := c.srv.store
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.propose(ctx, CmdCreateBucket, bucketCmd{Name: "shop"}))
	must(st.propose(ctx, CmdCreateUpload, nsclient.Upload{Bucket: "shop", Key: "big", ID: "u1"}))
	put := putPartCmd{uploadKeyCmd{"shop", "big", "u1"}, nsclient.Part{Number: 1, ETag: "e1", Size: 14, Segments: segs(fid(1, 1), fid(1, 2))}}
	must(st.propose(ctx, CmdPutPart, put))
	res, err := st.propose(ctx, CmdPutPart, put) // the replay
	if err != nil || len(res.(nsclient.PutResult).Replaced) != 0 {
		t.Fatalf("replayed PutPart: %+v, %v (replaced its own segments)", res, err)
	}
	if q, err := c.client.PendingDeletes(ctx, 0); err != nil || len(q) != 0 {
		t.Fatalf("delete queue after a replayed PutPart: %+v, %v", q, err)
	}
	// The part uploaded again with one segment new: only the old one goes.
	put.Part.Segments = segs(fid(1, 1), fid(1, 3))
	res, err = st.propose(ctx, CmdPutPart, put)
	if err != nil || !slices.Equal(res.(nsclient.PutResult).Replaced, segs(fid(1, 2))) {
		t.Fatalf("PutPart with a new segment: %+v, %v", res, err)
	}
	must(st.propose(ctx, CmdCompleteUpload, completeUploadCmd{uploadKeyCmd{"shop", "big", "u1"},
		nsclient.CompleteRequest{Parts: []nsclient.CompletePart{{Number: 1, ETag: "e1"}}, ETag: "big-1"}}))
	q, err := c.client.PendingDeletes(ctx, 0)
	if err != nil || len(q) != 1 || q[0].Fid != fid(1, 2) {
		t.Fatalf("delete queue %+v, %v: want only %s", q, err, fid(1, 2))
	}
	err = st.db.View(func(tx *bbolt.Tx) error {
		for _, f := range []string{fid(1, 1), fid(1, 3)} {
			if tx.Bucket(bktRefs).Get(refKey(f)) == nil {
				t.Errorf("%s of the completed object is not referenced", f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deleteRecorder is a dataserver's HTTP API that only records DELETEs of
// shards (and answers 204, as a dataserver does).
type deleteRecorder struct {
	mu      sync.Mutex
	deleted map[string]int // needle id (hex) → DELETE requests
}

func (d *deleteRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodDelete || !strings.HasPrefix(r.URL.Path, "/shard/") {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(r.URL.Path, "/") // "", shard, volume, index, needle
	d.mu.Lock()
	d.deleted[parts[len(parts)-1]]++
	d.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (d *deleteRecorder) count(needle depot.NeedleID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deleted[strconv.FormatUint(uint64(needle), 16)]
}

// TestDeletes_ReferencedSegmentNotDeleted queues a segment that an object
// still references (as the PutPart replay above did before its fix) next
// to one nothing references: the delete loop deletes the second on every
// member and drops the first from the queue without deleting a byte.
func TestDeletes_ReferencedSegmentNotDeleted(t *testing.T) {
	rec := &deleteRecorder{deleted: map[string]int{}}
	ds := httptest.NewServer(rec)
	t.Cleanup(ds.Close)
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, key: key, dir: t.TempDir()}
	c.ns = mustMember(t, key, membership.NodeMeta{ID: "ns", Role: depot.RoleNameserver, Addr: "127.0.0.1:1"})
	for i := range 6 {
		c.ds = append(c.ds, mustMember(t, key, membership.NodeMeta{ID: fmt.Sprintf("ds%d", i), Role: depot.RoleDataserver,
			Addr: ds.Listener.Addr().String(), Free: 1 << 40}, c.ns.GossipAddr()))
	}
	c.WaitAlive(6)
	c.Start(nil)
	ctx := ctxT(t)
	if _, err := c.client.CreateBucket(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	a, err := c.client.Assign(ctx, 4, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	live := depot.Fid{Volume: a.Volume.ID, Needle: a.First, Cookie: 7}
	dead := depot.Fid{Volume: a.Volume.ID, Needle: a.First + 1, Cookie: 7}
	o := depot.Object{Bucket: "shop", Key: "k", Size: 5, Segments: []depot.Segment{{Fid: live.String(), Size: 5}}}
	if _, err := c.client.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	// Queue both, as a faulty command would; the object keeps its ref.
	err = c.srv.store.db.Update(func(tx *bbolt.Tx) error {
		cmd := Command{Time: time.Now().Add(-time.Hour)}
		if err := enqueueDeletes(tx, cmd, []depot.Segment{{Fid: live.String(), Size: 5}, {Fid: dead.String(), Size: 5}}); err != nil {
			return err
		}
		return addRefs(tx, o.Segments, objectOwner("shop", "k"))
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the delete queue drained", func() bool {
		q, err := c.client.PendingDeletes(ctx, 0)
		return err == nil && len(q) == 0
	})
	if n := rec.count(dead.Needle); n != 6 {
		t.Errorf("unreferenced needle: %d DELETEs, want one per member (6)", n)
	}
	if n := rec.count(live.Needle); n != 0 {
		t.Fatalf("referenced needle %s: %d DELETEs, want none", live, n)
	}
	var m dto.Metric
	if err := c.srv.metrics.keptDeletes.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("depot_nameserver_delete_queue_referenced_total = %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
}

// TestDeletes_QueuedSegmentRefused commits segments that wait in the
// delete queue, as a replay of a superseded put does: the commits are
// refused, so a segment is never referenced and queued at once and the
// delete loop's check cannot race with a commit. Before, the replay made
// the key point at needles deleted a minute later. Once the entry is
// acknowledged, the index forgets the fid.
func TestDeletes_QueuedSegmentRefused(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	st := c.srv.store
	if _, err := st.propose(ctx, CmdCreateBucket, bucketCmd{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	v1, v2 := object("shop", "k", 1, 10), object("shop", "k", 2, 10)
	for _, o := range []depot.Object{v1, v2} {
		if _, err := st.propose(ctx, CmdPutObject, o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.propose(ctx, CmdPutObject, v1); !errors.Is(err, errQueued) {
		t.Fatalf("replayed put of the replaced version: %v, want errQueued", err)
	}
	if o, err := c.client.GetObject(ctx, "shop", "k"); err != nil || o.Segments[0].Fid != fid(1, 2) {
		t.Fatalf("key after the refused replay: %+v, %v", o, err)
	}
	if _, err := st.propose(ctx, CmdCreateUpload, nsclient.Upload{Bucket: "shop", Key: "m", ID: "u"}); err != nil {
		t.Fatal(err)
	}
	part := putPartCmd{uploadKeyCmd{"shop", "m", "u"}, nsclient.Part{Number: 1, ETag: "e", Size: 10, Segments: v1.Segments}}
	if _, err := st.propose(ctx, CmdPutPart, part); !errors.Is(err, errQueued) {
		t.Fatalf("part naming a queued segment: %v, want errQueued", err)
	}
	q, err := c.client.PendingDeletes(ctx, 0)
	if err != nil || len(q) != 1 || q[0].Fid != fid(1, 1) {
		t.Fatalf("delete queue %+v, %v", q, err)
	}
	if err := c.client.AckDeletes(ctx, []uint64{q[0].Seq}); err != nil {
		t.Fatal(err)
	}
	err = st.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bktQueued).Stats().KeyN; n != 0 {
			t.Errorf("queued index holds %d fids after the ack, want 0", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
