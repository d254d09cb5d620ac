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

// TestGridLatency measures the grid page of 48 products from the cache
// under 50 concurrent clients and checks p99 <= 20 ms.
func TestGridLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency figures in full mode only")
	}
	srv := newGridServer(t, 48)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	const clients, perClient = 50, 100
	lat := make([]time.Duration, 0, clients*perClient)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, perClient)
			for range perClient {
				t0 := time.Now()
				resp, err := cl.Get(srv.URL + "/")
				if err != nil {
					t.Error(err)
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
	total := time.Since(start)
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("grid of 48 products, %d clients x %d requests: %.0f req/s, p50 %v, p99 %v, max %v",
		clients, perClient, float64(len(lat))/total.Seconds(), p(0.5), p(0.99), lat[len(lat)-1])
	if p(0.99) > 20*time.Millisecond {
		t.Errorf("p99 %v > 20ms", p(0.99))
	}
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
