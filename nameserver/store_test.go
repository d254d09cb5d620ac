package nameserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// mustStore opens a started store in a temporary directory.
func mustStore(t testing.TB, window time.Duration) *store {
	t.Helper()
	st, err := openStore(t.TempDir()+"/"+DBFile, window, 1024, newMetrics(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	st.start()
	t.Cleanup(func() { st.close() })
	return st
}

func TestStore_GroupCommit(t *testing.T) {
	st := mustStore(t, time.Millisecond)
	ctx := ctxT(t)
	if _, err := st.propose(ctx, CmdCreateBucket, bucketCmd{Name: "gcb"}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 20
	fsyncs0 := st.fsyncs.Load()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%02d/%03d", w, i)
				res, err := st.propose(ctx, CmdPutObject, object("gcb", key, uint64(w*each+i+1), 5))
				if err != nil {
					t.Error(err)
					return
				}
				if _, ok := res.(nsclient.PutResult); !ok {
					t.Errorf("result %T", res)
				}
				// A refused command in the same batches changes nothing
				// and does not fail the others.
				if i%5 == 0 {
					if _, err := st.propose(ctx, CmdCreateBucket, bucketCmd{Name: "gcb"}); !errors.Is(err, depot.ErrExists) {
						t.Errorf("duplicate bucket: %v", err)
					}
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fsyncs := st.fsyncs.Load() - fsyncs0
	commands := writers*each + failures.Load()
	t.Logf("%d commands in %d fsyncs (%.1f per fsync)", commands, fsyncs, float64(commands)/float64(fsyncs))
	if fsyncs >= uint64(commands)/2 {
		t.Fatalf("%d fsyncs for %d concurrent commands: no group commit", fsyncs, commands)
	}
	err := st.db.View(func(tx *bbolt.Tx) error {
		if n := tx.Bucket(bktObjects).Bucket([]byte("gcb")).Stats().KeyN; n != writers*each {
			return fmt.Errorf("%d keys, want %d", n, writers*each)
		}
		if n := getU64(tx.Bucket(bktMeta), keyObjects); n != writers*each {
			return fmt.Errorf("object counter %d, want %d", n, writers*each)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStore_Closed(t *testing.T) {
	st, err := openStore(t.TempDir()+"/"+DBFile, 0, 16, newMetrics(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("NotStarted", func(t *testing.T) {
		if _, err := st.propose(context.Background(), CmdCreateBucket, bucketCmd{Name: "abc"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v", err)
		}
	})
	st.start()
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	t.Run("AfterClose", func(t *testing.T) {
		if _, err := st.propose(context.Background(), CmdCreateBucket, bucketCmd{Name: "abc"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("UnknownCommand", func(t *testing.T) {
		st := mustStore(t, 0)
		if _, err := st.propose(context.Background(), "bogus", struct{}{}); !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPlace_Racks(t *testing.T) {
	t.Run("RoundRobin", func(t *testing.T) {
		var cs []candidate
		for i, rack := range []string{"r1", "r1", "r1", "r2", "r2", "r3"} {
			cs = append(cs, candidate{ID: fmt.Sprintf("n%d", i), Rack: rack, Free: uint64(100 - i)})
		}
		members, err := place(3, 1, cs)
		if err != nil {
			t.Fatal(err)
		}
		racks := map[string]int{}
		for i, m := range members {
			if m.Index != i {
				t.Fatalf("member %d has index %d", i, m.Index)
			}
			racks[rackOf(cs, m.Node)]++
		}
		// 4 shards over 3 racks: one rack holds two, the others one each.
		if len(racks) != 3 || racks["r1"] != 2 {
			t.Fatalf("rack spread %v (members %v)", racks, members)
		}
		if got := nodes(members); !slices.Equal(got, []string{"n0", "n3", "n5", "n1"}) {
			t.Fatalf("members %v, want most free first in each round", got)
		}
	})
	t.Run("FreeSpace", func(t *testing.T) {
		cs := []candidate{
			{ID: "small", Free: 10}, {ID: "big", Free: 1000}, {ID: "mid", Free: 500},
			{ID: "busy", Free: 1000, Volumes: 9}, {ID: "big2", Free: 900},
		}
		members, err := place(2, 1, cs)
		if err != nil {
			t.Fatal(err)
		}
		if got := nodes(members); !slices.Equal(got, []string{"big", "big2", "mid"}) {
			t.Fatalf("members %v", got)
		}
	})
	t.Run("Distinct", func(t *testing.T) {
		var cs []candidate
		for i := range 12 {
			cs = append(cs, candidate{ID: fmt.Sprintf("n%02d", i), Rack: fmt.Sprintf("r%d", i%2), Free: 1})
		}
		members, err := place(8, 4, cs)
		if err != nil {
			t.Fatal(err)
		}
		got := nodes(members)
		sort.Strings(got)
		if len(slices.Compact(got)) != 12 {
			t.Fatalf("members not distinct: %v", got)
		}
	})
	t.Run("ErrNotEnoughNodes", func(t *testing.T) {
		_, err := place(4, 2, []candidate{{ID: "a"}, {ID: "b"}, {ID: "c"}})
		if !errors.Is(err, depot.ErrNotEnoughNodes) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "needs 6 alive dataservers, 3 alive") {
			t.Fatalf("text %q", err)
		}
	})
}

func rackOf(cs []candidate, id string) string {
	for _, c := range cs {
		if c.ID == id {
			return c.Rack
		}
	}
	return "?"
}

func nodes(ms []depot.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Node)
	}
	return out
}
