package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

func TestAdminStatus(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour})
	ctx := context.Background()
	ns := c.NSClient()
	var out bytes.Buffer
	if err := adminStatus(ctx, ns, &out, false); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "health: HEALTHY") || !strings.Contains(out.String(), "6 alive") {
		t.Fatalf("healthy cluster:\n%s", out.String())
	}
	// A bucket with lifecycle rules shows the worker's line once it passed.
	if _, err := ns.CreateBucket(ctx, "aging"); err != nil {
		t.Fatal(err)
	}
	rules := []nsclient.LifecycleRule{{Enabled: true, Prefix: "tmp/", ExpireDays: 1}}
	if _, err := ns.SetBucket(ctx, "aging", nsclient.BucketSettings{Lifecycle: &rules}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out.Reset()
		if err := adminStatus(ctx, ns, &out, false); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "lifecycle: 1 rule(s) in 1 bucket(s), last pass") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lifecycle line after 10s:\n%s", out.String())
		}
	}
	// Volumes exist once something is written.
	if _, err := c.Client().Put(ctx, strings.NewReader("hello"), 5, client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.KillDataserver(0); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out.Reset()
		if err := adminStatus(ctx, ns, &out, true); err != nil {
			t.Fatal(err)
		}
		var cs clusterStatus
		if err := json.Unmarshal(out.Bytes(), &cs); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out.String())
		}
		if cs.Health == "DEGRADED" && cs.MostDown == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after a kill: %s: %s", cs.Health, cs.Verdict)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.Reset()
	if err := adminStatus(ctx, ns, &out, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "1 dead") {
		t.Fatalf("status does not show the dead dataserver:\n%s", out.String())
	}
}

// A rebuild that cannot make progress (too few members left to read from)
// fails every pass: status shows the job failing, with its error, instead
// of a job that merely sits at 0%.
func TestAdminStatus_FailingRepair(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7, RepairAfter: time.Second})
	ctx := context.Background()
	ns := c.NSClient()
	st, err := c.Client().Put(ctx, strings.NewReader("hello"), 5, client.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fid, err := depot.ParseFid(st.Segments[0].Fid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ns.Volume(ctx, fid.Volume)
	if err != nil {
		t.Fatal(err)
	}
	// m+1 members go: k-1 are left to read from.
	for _, m := range v.Members[:v.M+1] {
		for i := range c.Dataservers() {
			if node.DataserverID(i) == m.Node {
				if err := c.KillDataserver(i); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var out bytes.Buffer
	deadline := time.Now().Add(30 * time.Second)
	for {
		out.Reset()
		if err := adminStatus(ctx, ns, &out, false); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "time(s) in a row: ") && strings.Contains(out.String(), "repair job(s) failing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show the failing repair:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("\n%s", out.String())
}
