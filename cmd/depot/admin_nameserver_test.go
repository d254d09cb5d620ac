package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

func TestAdminNameserver(t *testing.T) {
	if raceEnabled {
		// See internal/testcluster's skipUnderRace.
		t.Skip("raft group of three under the race detector: too slow on the CI machine; run without -race")
	}
	c := testcluster.New(t, testcluster.Options{Nameservers: 3})
	ctx := context.Background()
	ns := c.NSClient()
	var out bytes.Buffer
	if err := adminNameserver(ctx, ns, &out, []string{"nameserver", "ls"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "leader"); n != 1 || !strings.Contains(out.String(), "ns3") {
		t.Fatalf("nameserver ls:\n%s", out.String())
	}

	// Remove a follower, restart it, add it back.
	members, err := ns.Nameservers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim nsclient.NameserverInfo
	for _, m := range members {
		if !m.Leader {
			victim = m
		}
	}
	if err := adminNameserver(ctx, ns, &out, []string{"nameserver", "remove", victim.ID}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, ns, 2)
	slot := int(victim.ID[len(victim.ID)-1] - '1')
	if err := c.StopNameserver(slot); err != nil {
		t.Logf("stop %s: %v", victim.ID, err)
	}
	if err := c.StartNameserver(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := adminNameserver(ctx, ns, &out, []string{"nameserver", "add", victim.ID, victim.RaftAddr}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, ns, 3)

	// A backup is a bbolt file, written whole.
	file := filepath.Join(t.TempDir(), "ns.backup")
	if err := adminNameserver(ctx, ns, &out, []string{"backup", file}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil || len(b) < 4096 {
		t.Fatalf("backup: %d bytes, %v", len(b), err)
	}
}

func waitMembers(t *testing.T, ns *nsclient.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := ns.Nameservers(context.Background())
		if err == nil && len(l) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members: %v (%v), want %d", l, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
