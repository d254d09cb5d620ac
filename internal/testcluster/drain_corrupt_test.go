package testcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// A dataserver whose shard files were cut short (a disk that lost its
// tail) is drained: the move must not carry the lost needles over as
// missing, nor copy damage. After the drain and the drained dataserver's
// stop, two more dataservers go down, so every object now needs every
// moved shard whole to be read. (The chaos suite truncated a shard file
// of a dataserver being drained.)
func TestDrain_TruncatedShards(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 8, MinWritable: 6})
	cl := c.Client()
	objs := putAll(t, cl, 0, smallSizes(200, 64<<10, 41), 8)
	victim := 2
	id := node.DataserverID(victim)
	if err := c.StopDataserver(victim); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(c.DataserverDir(victim), "*.shard"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shard files: %v", err)
	}
	cut := 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		// Cut the last third: its records are gone or torn.
		if st.Size() > 4096 {
			if err := os.Truncate(f, st.Size()*2/3); err != nil {
				t.Fatal(err)
			}
			cut++
		}
	}
	t.Logf("cut %d of %d shard files on %s", cut, len(files), id)
	if err := c.StartDataserver(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	ns := c.NSClient()
	if err := ns.Drain(context.Background(), id, false); err != nil {
		t.Fatal(err)
	}
	waitRebalanced(t, ns, 90*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done && st.Drained(id) })
	if err := c.StopDataserver(victim); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(victim)
	c.WaitHealed(t, 60*time.Second)
	kill(t, c, 0)
	kill(t, c, 5)
	checkAll(t, cl, objs, 0, 43)
}
