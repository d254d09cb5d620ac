package catalog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/internal/testcluster"
	"depot/shop/catalog"
	"depot/shop/internal/testimg"
	"depot/shop/media"
	"depot/shop/objstore"
)

func newService(t *testing.T, c *testcluster.Cluster, dir string) *catalog.Service {
	t.Helper()
	st, err := objstore.New(objstore.Config{Endpoint: c.Endpoint(), AccessKey: c.User, SecretKey: c.Password})
	if err != nil {
		t.Fatal(err)
	}
	s, err := catalog.Open(catalog.Config{DBPath: filepath.Join(dir, "catalog.db"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func call(t *testing.T, method, url, ctype string, body []byte, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// waitReady polls the API until every image of a product is processed.
func waitReady(t *testing.T, base, id string, n int) catalog.Product {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p catalog.Product
		call(t, "GET", base+"/api/catalog/products/"+id, "", nil, 200, &p)
		ready := 0
		for _, im := range p.Images {
			if im.Status != media.StatusPending {
				ready++
			}
		}
		if len(p.Images) == n && ready == n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("images not processed in time: %+v", p.Images)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestCatalogAPI(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	dir := t.TempDir()
	s := newService(t, c, dir)
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	base := srv.URL

	// Create, validate, update.
	var p catalog.Product
	call(t, "POST", base+"/api/catalog/products", "application/json", []byte(`{"title":"Blue mug","description":"Holds tea","price_cents":1250,"stock":3}`), 201, &p)
	call(t, "POST", base+"/api/catalog/products", "application/json", []byte(`{"title":"","price_cents":1}`), 400, nil)
	call(t, "POST", base+"/api/catalog/products", "application/x-www-form-urlencoded", []byte(`title=x`), 400, nil)
	call(t, "PUT", base+"/api/catalog/products/"+p.ID, "application/json", []byte(`{"title":"Blue mug XL","description":"Holds more tea","price_cents":1500,"stock":2}`), 200, &p)
	if p.Title != "Blue mug XL" || p.PriceCents != 1500 {
		t.Fatalf("update: %+v", p)
	}

	// Browser-style upload: presign, PUT straight to depot, attach.
	var up media.Upload
	call(t, "POST", base+"/api/catalog/uploads", "application/json", []byte(`{"content_type":"image/jpeg"}`), 200, &up)
	if !strings.HasPrefix(up.URL, c.Endpoint()) {
		t.Fatalf("presigned URL %s not on depot %s", up.URL, c.Endpoint())
	}
	call(t, "PUT", up.URL, "image/jpeg", testimg.JPEG(1200, 800, 1), 200, nil)
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "application/json", []byte(`{"key":"`+up.Key+`"}`), 202, nil)
	// Raw uploads through the shop: PNG and WebP.
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "image/png", testimg.PNG(300, 500, 2), 202, nil)
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "image/webp", testimg.WebP(), 202, nil)
	// Not an image: refused before or after reaching depot.
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "image/png", []byte("<script>alert(1)</script>"), 400, nil)
	call(t, "POST", base+"/api/catalog/uploads", "application/json", []byte(`{"content_type":"text/html"}`), 400, nil)
	var up2 media.Upload
	call(t, "POST", base+"/api/catalog/uploads", "application/json", []byte(`{"content_type":"image/jpeg"}`), 200, &up2)
	call(t, "PUT", up2.URL, "image/jpeg", []byte("definitely not a jpeg"), 200, nil)
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "application/json", []byte(`{"key":"`+up2.Key+`"}`), 400, nil)
	call(t, "POST", base+"/api/catalog/products/"+p.ID+"/images", "application/json", []byte(`{"key":"uploads/../../etc"}`), 400, nil)

	p = waitReady(t, base, p.ID, 3)
	for i, im := range p.Images {
		if im.Status != media.StatusReady {
			t.Fatalf("image %d: %s", i, im.Status)
		}
		for _, size := range []string{"thumb", "listing", "full"} {
			u := im.URLs[size]
			resp, err := http.Get(u) // anonymous: the bucket is public-read
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || len(body) == 0 {
				t.Fatalf("GET %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "public") {
				t.Fatalf("GET %s: Cache-Control %q", u, cc)
			}
		}
	}
	if p.Images[0].Width != 1200 || p.Images[2].Width != 1 {
		t.Fatalf("dimensions: %+v", p.Images)
	}

	// Reorder and remove one image.
	body, _ := json.Marshal(map[string]any{"title": p.Title, "price_cents": p.PriceCents, "stock": p.Stock, "images": []string{p.Images[2].ID, p.Images[0].ID}})
	call(t, "PUT", base+"/api/catalog/products/"+p.ID, "application/json", body, 200, &p)
	if len(p.Images) != 2 || p.Images[1].Width != 1200 {
		t.Fatalf("reorder: %+v", p.Images)
	}

	// Paging and search.
	for i := range 30 {
		call(t, "POST", base+"/api/catalog/products", "application/json", []byte(`{"title":"Lamp `+string(rune('A'+i%26))+`","price_cents":100}`), 201, nil)
	}
	var page catalog.ListResult
	call(t, "GET", base+"/api/catalog/products?per_page=10&page=2", "", nil, 200, &page)
	if page.Total != 31 || len(page.Products) != 10 || page.Page != 2 {
		t.Fatalf("page 2: total %d, %d products", page.Total, len(page.Products))
	}
	call(t, "GET", base+"/api/catalog/products?q=MUG", "", nil, 200, &page)
	if page.Total != 1 || page.Products[0].ID != p.ID {
		t.Fatalf("search: %+v", page)
	}
	call(t, "GET", base+"/api/catalog/products?q=lamp&per_page=100", "", nil, 200, &page)
	if page.Total != 30 || page.Products[0].Title != "Lamp D" {
		t.Fatalf("search lamps: total %d first %q", page.Total, page.Products[0].Title)
	}

	// Delete; images go in the background.
	call(t, "DELETE", base+"/api/catalog/products/"+p.ID, "", nil, 204, nil)
	call(t, "GET", base+"/api/catalog/products/"+p.ID, "", nil, 404, nil)
	deadline := time.Now().Add(20 * time.Second)
	for s.PendingJobs() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.PendingJobs(); n != 0 {
		t.Fatalf("%d jobs still queued", n)
	}
	resp, err := http.Get(p.Images[1].URLs["thumb"])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("deleted product's thumbnail: %d", resp.StatusCode)
	}
}

// TestCatalogQueueSurvivesRestart closes the service while jobs are
// queued (depot unreachable) and checks that a new service on the same
// database finishes them.
func TestCatalogQueueSurvivesRestart(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	dir := t.TempDir()
	s := newService(t, c, dir)
	ctx := context.Background()
	p, err := s.Create(ctx, catalog.Input{Title: "Kettle", PriceCents: 3000})
	if err != nil {
		t.Fatal(err)
	}
	up, err := s.PresignUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", up.URL, bytes.NewReader(testimg.JPEG(640, 480, 5)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, err := s.AttachUpload(ctx, p.ID, up.Key); err != nil {
		t.Fatal(err)
	}
	// Close at once: the job is either done or still queued on disk.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := newService(t, c, dir)
	defer s2.Close()
	srv := httptest.NewServer(s2.Handler())
	defer srv.Close()
	got := waitReady(t, srv.URL, p.ID, 1)
	if got.Images[0].Status != media.StatusReady {
		t.Fatalf("after restart: %+v", got.Images[0])
	}
}
