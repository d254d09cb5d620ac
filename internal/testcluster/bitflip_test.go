package testcluster_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"depot/internal/testcluster"
)

// checksumFailures reads depot_dataserver_checksum_failures_total from a
// dataserver's /metrics.
func checksumFailures(t *testing.T, addr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "depot_dataserver_checksum_failures_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no depot_dataserver_checksum_failures_total in /metrics")
	return 0
}

func TestCluster_BitFlip(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := c.Client()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(30, 2<<20, stripe, c.Opts.SegmentSize, 11), 4)

	// Flip bytes all through every data-shard file on one dataserver.
	victim := 2
	dir := c.DataserverDir(victim)
	files, err := filepath.Glob(filepath.Join(dir, "*.shard"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shard files in %s: %v", dir, err)
	}
	flipped := 0
	for _, f := range files {
		var vol, idx int
		if _, err := fmt.Sscanf(filepath.Base(f), "%d_%d.shard", &vol, &idx); err != nil || idx >= c.Opts.K {
			continue
		}
		fh, err := os.OpenFile(f, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, err := fh.Stat()
		if err != nil {
			t.Fatal(err)
		}
		// One flipped byte every 8 KiB after the superblock: most land
		// in needle data, some in headers; all must be caught.
		b := make([]byte, 1)
		for off := int64(64 + 32 + 5); off < st.Size(); off += 8 << 10 {
			if _, err := fh.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xff
			if _, err := fh.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		fh.Close()
		flipped++
	}
	if flipped == 0 {
		t.Fatal("dataserver holds no data shard file")
	}
	addr := c.Dataserver(victim).Server.Addr()
	before := checksumFailures(t, addr)

	// Every object still reads back exactly: the corrupt shards are
	// replaced by parity.
	checkAll(t, cl, objs, 1, 12)

	after := checksumFailures(t, addr)
	if after <= before {
		t.Fatalf("checksum failures metric %v -> %v: corruption not counted", before, after)
	}
	t.Logf("flipped %d shard files; checksum failures %v -> %v", flipped, before, after)
}
