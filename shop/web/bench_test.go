package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"depot/shop/catalog"
	"depot/shop/media"
	"depot/shop/web"
)

// fakeCatalog serves a fixed list of products with ready images.
type fakeCatalog struct {
	web.Catalog
	res catalog.ListResult
}

func (f *fakeCatalog) List(ctx context.Context, o catalog.ListOptions) (catalog.ListResult, error) {
	return f.res, nil
}
func (f *fakeCatalog) ImageURL(key string) string { return "http://depot.example/catalog/" + key }
func (f *fakeCatalog) Available() bool            { return true }
func (f *fakeCatalog) Generation() uint64         { return 1 }

type fakeReviews struct{ web.Reviews }

func newGridServer(tb testing.TB, n int) *httptest.Server {
	fc := &fakeCatalog{res: catalog.ListResult{Total: n, Page: 1, PerPage: 48}}
	for i := range n {
		id := fmt.Sprintf("%024x", i)
		fc.res.Products = append(fc.res.Products, catalog.Product{ID: id, Title: fmt.Sprintf("Product <%d> & co", i), PriceCents: int64(100 + i),
			Images: []media.Image{{ID: "i", Status: media.StatusReady, Keys: map[string]string{"thumb": "products/" + id + "/i/thumb.jpg"}}}})
	}
	s, err := web.New(web.Config{Catalog: fc, Reviews: fakeReviews{}})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(s)
	tb.Cleanup(srv.Close)
	return srv
}

// BenchmarkGridLatency measures the grid page of 48 products from the
// cache under 50 concurrent clients (100 requests each per round) and
// reports p50 and p99; the shop's target is p99 <= 20 ms:
//
//	go test -run X -bench GridLatency -benchtime 3x ./shop/web
func BenchmarkGridLatency(b *testing.B) {
	srv := newGridServer(b, 48)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	const clients, perClient = 50, 100
	var lat []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				mine := make([]time.Duration, 0, perClient)
				for range perClient {
					t0 := time.Now()
					resp, err := cl.Get(srv.URL + "/")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkGrid48(b *testing.B) {
	srv := newGridServer(b, 48)
	b.SetParallelism(25) // 50 clients on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Get(srv.URL + "/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
