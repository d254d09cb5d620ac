package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"depot/client"
	"depot/internal/testcluster"
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
