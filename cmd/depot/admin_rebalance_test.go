package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
)

// depot admin drain NODE moves everything off NODE and says so; then
// depot admin rebalance spreads the bytes and prints the spread.
func TestAdminDrainAndRebalance(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7, MinWritable: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl := c.Client()
	for i := range 40 {
		body := bytes.Repeat([]byte{byte(i)}, 20000+i*500)
		if _, err := cl.Put(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns := c.NSClient()
	victim := node.DataserverID(6)
	var out bytes.Buffer
	if err := adminRebalance(ctx, ns, &out, io.Discard, rebalanceOpts{cmd: "drain", args: []string{victim}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), victim+" holds no shard any more: it may be stopped") {
		t.Fatalf("drain output:\n%s", out.String())
	}
	if err := adminRebalance(ctx, ns, &out, io.Discard, rebalanceOpts{cmd: "drain", args: []string{victim}, undo: true}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := adminRebalance(ctx, ns, &out, io.Discard, rebalanceOpts{cmd: "rebalance", band: 0.3}); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "within band: true") {
		t.Fatalf("rebalance output:\n%s", out.String())
	}
	c.WaitHealed(t, 30*time.Second)
}
