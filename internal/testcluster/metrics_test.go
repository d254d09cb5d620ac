package testcluster_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"depot/client"
	"depot/internal/testcluster"
)

// scrape returns the text of url's /metrics.
func scrape(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestMetrics scrapes every role's /metrics after some traffic and checks
// that the series an operator needs are there: requests by operation and
// status, latency histograms, bytes in and out, needles, checksum
// failures, degraded volumes, repair bytes and queue, gossip members by
// state.
func TestMetrics(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour})
	ctx := context.Background()
	body := "metrics need traffic to have series"
	res, err := c.Client().Put(ctx, strings.NewReader(body), int64(len(body)), client.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// One request through the gateway's HTTP API, for its series.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint()+"/v1/blobs/"+res.Segments[0].Fid, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	// Each name must have a sample, with the labels shown when given.
	common := []string{
		`depot_gossip_members{role="dataserver",state="alive"}`,
		`depot_gossip_members{role="dataserver",state="dead"}`,
	}
	roles := []struct {
		name, url string
		want      []string
	}{
		{"nameserver", c.NS.Server.URL(), []string{
			`depot_nameserver_http_requests_total{code="200",route="POST /assign"}`,
			`depot_nameserver_http_request_seconds_bucket{route="POST /assign",le=`,
			`depot_nameserver_http_bytes_in_total`,
			`depot_nameserver_http_bytes_out_total`,
			`depot_nameserver_needles_leased_total`,
			`depot_volumes{state="degraded"}`,
			`depot_volumes_degraded`,
			`depot_repair_bytes`,
			`depot_repair_bytes_total_estimate`,
			`depot_repair_jobs`,
			`depot_repair_queue_shards`,
			`depot_delete_queue`,
		}},
		{"dataserver", "http://" + c.Dataserver(0).Server.Addr(), []string{
			`depot_dataserver_requests_total{op="put",status="`,
			`depot_dataserver_request_seconds_bucket{op="put",le=`,
			`depot_dataserver_bytes_received_total`,
			`depot_dataserver_bytes_sent_total`,
			`depot_dataserver_needles`,
			`depot_dataserver_checksum_failures_total`,
			`depot_repair_bytes_total`,
			`depot_scrub_corrupt_total`,
		}},
		{"gateway", c.Endpoint(), []string{
			`depot_gateway_requests_total{op="`,
			`depot_gateway_request_seconds_bucket{op="`,
			`depot_gateway_bytes_in_total`,
			`depot_gateway_bytes_out_total`,
		}},
	}
	for _, r := range roles {
		t.Run(r.name, func(t *testing.T) {
			text := scrape(t, r.url)
			for _, name := range append(r.want, common...) {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name)).MatchString(text) {
					t.Errorf("%s /metrics lacks %s", r.name, name)
				}
			}
			if t.Failed() {
				t.Logf("%s /metrics:\n%s", r.name, text)
			}
		})
	}
}
