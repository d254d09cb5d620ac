package nameserver

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot"
)

// raftAlone returns a config modifier that makes the nameserver the only
// member of a raft group whose raft port is addr ("127.0.0.1:0" the first
// time); *addr is set to the port taken, so that a restart keeps it.
func raftAlone(t *testing.T, addr *string) func(*Config) {
	return func(cfg *Config) {
		layer, err := ListenRaft(*addr, "")
		if err != nil {
			t.Fatal(err)
		}
		*addr = layer.Addr().String()
		cfg.Raft = TestRaftConfig("n1", layer, []Peer{{ID: "n1", Addr: *addr}})
	}
}

func waitLeader(t *testing.T, c *testCluster) {
	t.Helper()
	waitFor(t, 20*time.Second, "raft leadership", c.srv.IsLeader)
}

// A member that crashed after raft persisted an installed snapshot but
// before the database took it (hashicorp/raft writes the snapshot first,
// and NoSnapshotRestoreOnStart skips it at start) must catch up from the
// snapshot when it starts, not serve the older state.
func TestRaft_StartRestoresSnapshotAheadOfDatabase(t *testing.T) {
	addr := "127.0.0.1:0"
	c := MustCluster(t, []string{"a", "b", "c"}, raftAlone(t, &addr))
	waitLeader(t, c)
	ctx := ctxT(t)
	if _, err := c.client.CreateBucket(ctx, "early"); err != nil {
		t.Fatal(err)
	}
	var old bytes.Buffer
	if _, err := c.srv.Backup(ctx, &old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CreateBucket(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.PutObject(ctx, object("late", "k", 1, 9)); err != nil {
		t.Fatal(err)
	}
	if err := c.srv.raft.r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := c.srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The database as it was before the snapshot: what a crash between
	// raft's sink.Close and fsm.Restore leaves.
	// (The backup's header goes: the rest is the bbolt file.)
	if err := os.WriteFile(filepath.Join(c.dir, DBFile), old.Bytes()[backupHeaderSize:], 0o600); err != nil {
		t.Fatal(err)
	}
	c.Start(raftAlone(t, &addr))
	waitLeader(t, c)
	got, err := c.client.GetObject(ctx, "late", "k")
	if err != nil {
		t.Fatalf("object committed before the snapshot, after restart: %v", err)
	}
	if got.Size != 9 {
		t.Fatalf("object after restart: %+v", got)
	}

	// A plain restart (database current) keeps the state, and writes go on.
	if _, err := c.client.CreateBucket(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	c.srv.Close()
	c.Start(raftAlone(t, &addr))
	waitLeader(t, c)
	for _, b := range []string{"early", "late", "later"} {
		if _, err := c.client.Bucket(ctx, b); err != nil {
			t.Fatalf("bucket %s after restart: %v", b, err)
		}
	}
	if _, err := c.client.CreateBucket(ctx, "late"); !errors.Is(err, depot.ErrExists) {
		t.Fatalf("bucket created twice: %v", err)
	}
}
