package nameserver

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/nameserver/nsclient"
)

// TestUITemplateRepair renders the status page with repair under way: the
// progress, rate and time left show.
func TestUITemplateRepair(t *testing.T) {
	now := time.Now()
	st := nsclient.Status{
		Dataservers: []nsclient.Dataserver{{ID: "ds1", State: "dead", Used: 3 << 30, Free: 1 << 30}, {ID: "ds2", State: "alive", Used: 1 << 30, Free: 3 << 30}},
		Alive:       1, Volumes: 1, ByState: map[depot.VolumeState]int{depot.VolumeRepairing: 1},
	}
	rs := nsclient.RepairStatus{
		Jobs: []nsclient.RepairJob{{Volume: 1, Index: 2, From: "ds1", To: "ds2", Started: now.Add(-time.Minute), Bytes: 1 << 20, Total: 4 << 20,
			Failures: 7, Error: "erasure: too few shards", Skipped: 2}},
		Missed:   3,
		Degraded: 1,
		Bytes:    1 << 20, Total: 4 << 20, Rate: 1 << 16, ETA: 48 * time.Second,
	}
	h := nsclient.Assess(st, rs, []depot.Volume{{ID: 1, K: 1, M: 1, Members: []depot.Member{{Node: "ds1"}, {Node: "ds2"}}}})
	var buf bytes.Buffer
	if err := uiTemplate.Execute(&buf, uiData{Health: h, Counts: map[string]int{"dead": 1, "alive": 1}, Now: now, Refresh: 2000}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"AT RISK", "about 48s left", "64.0 KiB/s", "1.0 MiB of 4.0 MiB (25%)", `style="width:75.0%"`, `data-state="dead"`, "needle shard(s) awaiting repair",
		"7 in a row</b>: erasure: too few shards", "2 needle(s) skipped", "1 repair job(s) failing"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}
