package testcluster_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"depot/client"
	"depot/internal/testcluster"
)

// clientRoutes are the nameserver routes a writing client calls: leases,
// volume lookups, missed-write reports. (The dataservers' and repair
// workers' own polling runs by the clock, not by the puts.)
var clientRoutes = []string{`route="POST /assign"`, `route="GET /volumes/{id}"`, `route="POST /missed"`}

// nameserverRequests sums depot_nameserver_http_requests_total over routes
// and every status.
func nameserverRequests(t *testing.T, url string, routes []string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "depot_nameserver_http_requests_total{") ||
			!slices.ContainsFunc(routes, func(r string) bool { return strings.Contains(line, r) }) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// TestCluster_LeasesSpareTheNameserver checks that small puts make at most
// 0.1 nameserver requests each on average: needle ids come from leases and
// volumes from the client's cache.
func TestCluster_LeasesSpareTheNameserver(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := c.Client()
	body := bytes.Repeat([]byte("depot"), 64<<10/5)
	before := nameserverRequests(t, c.NS.Server.URL(), clientRoutes)
	const puts = 500
	for range puts {
		if _, err := cl.Put(context.Background(), bytes.NewReader(body), int64(len(body)), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	after := nameserverRequests(t, c.NS.Server.URL(), clientRoutes)
	per := (after - before) / puts
	t.Logf("%d puts of %d bytes made %.0f nameserver requests: %.3f per put", puts, len(body), after-before, per)
	if testing.Verbose() || per > 0.1 {
		resp, err := http.Get(c.NS.Server.URL() + "/metrics")
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "depot_nameserver_http_requests_total{") {
					t.Log(sc.Text())
				}
			}
			resp.Body.Close()
		}
	}
	if per > 0.1 {
		t.Fatalf("%.3f nameserver requests per put, want at most 0.1", per)
	}
}

// TestCluster_LocalLookups checks that a gateway in the nameserver's own
// process (depot server) answers S3 PUTs, GETs and HEADs without an HTTP
// request to the nameserver for the key or the bucket, and that the
// lookups still see every change at once.
func TestCluster_LocalLookups(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := haMinio(t, c)
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "local", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	lookups := []string{`route="GET /objects/{bucket}"`, `route="GET /buckets/{bucket}"`, `route="PUT /objects/{bucket}"`}
	before := nameserverRequests(t, c.NS.Server.URL(), lookups)
	for i := range 20 {
		body := strings.Repeat(strconv.Itoa(i), 100+i)
		if _, err := mc.PutObject(ctx, "local", "k", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		o, err := mc.GetObject(ctx, "local", "k", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || string(got) != body {
			t.Fatalf("get %d: %d bytes, %v; want the %d just put", i, len(got), err, len(body))
		}
		if _, err := mc.StatObject(ctx, "local", "k", minio.StatObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := mc.RemoveObject(ctx, "local", "k", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.StatObject(ctx, "local", "k", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("stat after delete: %v, want NoSuchKey", err)
	}
	if n := nameserverRequests(t, c.NS.Server.URL(), lookups) - before; n != 0 {
		t.Errorf("%.0f puts and lookups went over HTTP, want 0", n)
	}
}
