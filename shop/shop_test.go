package shop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
	"depot/shop"
	"depot/shop/internal/testimg"
	"depot/shop/media"
	"depot/shop/objstore"
	"depot/shop/reviews"
)

// startShop runs a shop on endpoint in a temporary directory.
func startShop(t *testing.T, endpoint, user, pass string, seed int) (*shop.Shop, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := shop.New(ctx, shop.Config{
		DataDir: t.TempDir(), Seed: seed > 0, SeedProducts: seed,
		S3: objstore.Config{Endpoint: endpoint, AccessKey: user, SecretKey: pass, BreakerCooldown: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return s, srv
}

// waitJobs polls until both services' queues are empty.
func waitJobs(t *testing.T, s *shop.Shop, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.Catalog.PendingJobs()+s.Reviews.PendingJobs() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("image jobs still queued after %v: catalog %d, reviews %d", within, s.Catalog.PendingJobs(), s.Reviews.PendingJobs())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) get(path string, want int) string {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
	}
	return string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// postForm posts a multipart form like a browser without JavaScript.
func (b *browser) postForm(path string, fields map[string]string, files map[string][]byte) (*http.Response, string) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for name, data := range files {
		field, fn, _ := strings.Cut(name, ":")
		w, _ := mw.CreateFormFile(field, fn)
		w.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", b.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestShopPagesAndReviewsAPI(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	s, srv := startShop(t, c.Endpoint(), c.User, c.Password, 6)
	waitJobs(t, s, 60*time.Second)
	b := newBrowser(t, srv.URL)

	grid := b.get("/", 200)
	thumbs := regexp.MustCompile(`<img src="([^"]+/catalog/products/[^"]+/thumb.jpg)"`).FindAllStringSubmatch(grid, -1)
	if len(thumbs) != 6 {
		t.Fatalf("grid shows %d thumbnails, want 6", len(thumbs))
	}
	resp, err := http.Get(thumbs[0][1])
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=31536000") {
		t.Fatalf("thumbnail %s from depot: %v %v", thumbs[0][1], err, resp)
	}
	resp.Body.Close()
	pid := regexp.MustCompile(`href="/products/([0-9a-f]{24})"`).FindStringSubmatch(grid)[1]

	// A review through the form without JavaScript, with a photo and a
	// hostile text.
	page := b.get("/products/"+pid, 200)
	token := csrfRE.FindStringSubmatch(page)[1]
	evil := `<script>alert("x")</script>`
	resp, body := b.postForm("/products/"+pid+"/reviews", map[string]string{"csrf": token, "rating": "4", "author": "Mallory", "text": evil},
		map[string][]byte{"photos:cat.png": testimg.PNG(500, 400, 9)})
	if resp.StatusCode != 200 || !strings.Contains(body, "by Mallory") {
		t.Fatalf("review form: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, evil) || !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatal("review text not escaped")
	}
	// Without the token: refused.
	resp, _ = b.postForm("/products/"+pid+"/reviews", map[string]string{"rating": "5", "author": "Eve", "text": "forged"}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("review without CSRF token: %d", resp.StatusCode)
	}
	// A non-image is refused with a readable message.
	resp, body = b.postForm("/products/"+pid+"/reviews", map[string]string{"csrf": token, "rating": "5", "author": "Eve", "text": "x"},
		map[string][]byte{"photos:x.png": []byte("<html>not an image</html>")})
	if resp.StatusCode != 400 || !strings.Contains(body, "not a JPEG, PNG, GIF or WebP image") {
		t.Fatalf("non-image photo: %d", resp.StatusCode)
	}
	waitJobs(t, s, 30*time.Second)
	page = b.get("/products/"+pid, 200)
	if !regexp.MustCompile(`<img src="[^"]+/reviews/reviews/[^"]+/thumb.jpg" alt="Photo 1 by Mallory"`).MatchString(page) {
		t.Fatal("review photo thumbnail not on the product page")
	}

	// Product form without JavaScript: create with an image, then edit.
	form := b.get("/products/new", 200)
	token = csrfRE.FindStringSubmatch(form)[1]
	resp, body = b.postForm("/products", map[string]string{"csrf": token, "title": "Test <b>kettle</b>", "description": "Boils", "price": "24,90", "stock": "5"},
		map[string][]byte{"images:k.jpg": testimg.JPEG(800, 800, 4)})
	if resp.StatusCode != 200 || !strings.Contains(body, "Test &lt;b&gt;kettle&lt;/b&gt;") || !strings.Contains(body, "€24.90") {
		t.Fatalf("create product: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "Image being prepared") && !strings.Contains(body, "listing.jpg") {
		t.Fatal("new product's image neither placeholder nor ready")
	}
	resp, body = b.postForm("/products", map[string]string{"csrf": token, "title": "", "price": "abc", "stock": "1"}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, "price must look like 12.50") {
		t.Fatalf("invalid product: %d", resp.StatusCode)
	}

	// The reviews API: presigned photo upload, create, list, average.
	api := srv.URL + "/api/reviews"
	var up media.Upload
	postJSON(t, api+"/uploads", `{"content_type":"image/webp"}`, 200, &up)
	req, _ := http.NewRequest("PUT", up.URL, bytes.NewReader(testimg.WebP()))
	req.Header.Set("Content-Type", "image/webp")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %v %v", err, resp)
	}
	var rv reviews.Review
	postJSON(t, api+"/products/"+pid, `{"rating":1,"text":"meh","author":"Bob","photo_keys":["`+up.Key+`"]}`, 201, &rv)
	postJSON(t, api+"/products/"+pid, `{"rating":6,"text":"x","author":"Bob"}`, 400, nil)
	postJSON(t, api+"/products/"+pid, `{"rating":3,"text":"x","author":"Bob","photo_keys":["uploads/00000000000000000000000000000000"]}`, 400, nil)
	for i := range 12 {
		postJSON(t, api+"/products/"+pid, `{"rating":5,"text":"great `+string(rune('a'+i))+`","author":"Ann"}`, 201, nil)
	}
	var pg reviews.Page
	getJSON(t, api+"/products/"+pid+"?per_page=5&page=3", &pg)
	wantAvg := float64(4+1+5*12+sumSeeded(t, api, pid)) / float64(pg.Count)
	if pg.Total != pg.Count || len(pg.Reviews) != pg.Total-10 || pg.Average != wantAvg {
		t.Fatalf("page 3: total %d count %d, %d reviews, average %v want %v", pg.Total, pg.Count, len(pg.Reviews), pg.Average, wantAvg)
	}
	getJSON(t, api+"/products/"+pid+"?per_page=1", &pg)
	if pg.Reviews[0].Text != "great l" {
		t.Fatalf("newest review first: %q", pg.Reviews[0].Text)
	}
	waitJobs(t, s, 30*time.Second)
	var got reviews.Review
	getJSON(t, api+"/reviews/"+rv.ID, &got)
	if len(got.Photos) != 1 || got.Photos[0].Status != media.StatusReady || got.Photos[0].URLs["thumb"] == "" {
		t.Fatalf("API review photo: %+v", got.Photos)
	}
}

// sumSeeded is the sum of the ratings the seed gave to a product: the
// ratings of reviews by the seed's authors.
func sumSeeded(t *testing.T, api, pid string) int {
	var pg reviews.Page
	getJSON(t, api+"/products/"+pid+"?per_page=100", &pg)
	sum := 0
	for _, r := range pg.Reviews {
		if r.Text == "Exactly as pictured. Would buy again." {
			sum += r.Rating
		}
	}
	return sum
}

func postJSON(t *testing.T, url, body string, want int, out any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// proxy forwards TCP connections from a fixed address to a backend that
// can change: it stands for depot's stable address across a restart.
type proxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, backend string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) setBackend(b string) {
	p.mu.Lock()
	p.backend = b
	p.mu.Unlock()
	p.cut()
}

// cut closes every open connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		p.conns[c] = true
	}
	p.mu.Unlock()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		backend := p.backend
		p.mu.Unlock()
		p.wg.Go(func() {
			u, _ := url.Parse(backend)
			d, err := net.DialTimeout("tcp", u.Host, time.Second)
			if err != nil {
				c.Close()
				return
			}
			p.track(c, d)
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(d, c); d.Close() })
			io.Copy(c, d)
			c.Close()
			wg.Wait()
		})
	}
}

// TestShopDepotDown stops the whole depot cluster under a running shop:
// pages still render, uploads fail within 5 seconds with a readable
// message, and once a cluster runs again on the same data directory the
// same shop uploads again.
func TestShopDepotDown(t *testing.T) {
	dir := t.TempDir()
	c, err := testcluster.Start(t, testcluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// A user kept in the nameserver's database survives the restart (the
	// harness's root password does not).
	ctx := context.Background()
	const user, pass = "SHOPUSER", "shop-secret-for-tests-0123456789"
	if err := putUser(ctx, c, user, pass); err != nil {
		c.Close(ctx)
		t.Fatal(err)
	}
	px := newProxy(t, c.Endpoint())
	s, srv := startShop(t, px.URL(), user, pass, 3)
	waitJobs(t, s, 60*time.Second)
	b := newBrowser(t, srv.URL)
	grid := b.get("/", 200)
	pid := regexp.MustCompile(`href="/products/([0-9a-f]{24})"`).FindStringSubmatch(grid)[1]
	title := regexp.MustCompile(`<h1>([^<]+)</h1>`).FindStringSubmatch(b.get("/products/"+pid, 200))[1]

	if err := c.Close(ctx); err != nil {
		t.Logf("cluster close: %v", err)
	}
	px.cut()

	page := b.get("/products/"+pid, 200)
	if !strings.Contains(page, title) {
		t.Fatal("product page without depot lacks the product")
	}
	token := csrfRE.FindStringSubmatch(page)[1]
	start := time.Now()
	resp, body := b.postForm("/products/"+pid+"/reviews", map[string]string{"csrf": token, "rating": "5", "author": "Zoe", "text": "offline"},
		map[string][]byte{"photos:p.jpg": testimg.JPEG(300, 300, 1)})
	took := time.Since(start)
	if took > 5*time.Second || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Image storage is unavailable right now") {
		t.Fatalf("upload with depot down: %d after %v", resp.StatusCode, took)
	}
	t.Logf("upload with depot down failed in %v", took)
	// Now the breaker is open: pages say so and show placeholders.
	if grid := b.get("/", 200); !strings.Contains(grid, "Images are temporarily unavailable") {
		t.Fatal("grid does not show the degraded notice")
	}
	start = time.Now()
	resp, _ = b.postForm("/products/"+pid+"/reviews", map[string]string{"csrf": token, "rating": "5", "author": "Zoe", "text": "offline"},
		map[string][]byte{"photos:p.jpg": testimg.JPEG(300, 300, 1)})
	if resp.StatusCode != 503 || time.Since(start) > 5*time.Second {
		t.Fatalf("second upload with depot down: %d after %v", resp.StatusCode, time.Since(start))
	}

	c2 := testcluster.New(t, testcluster.Options{Dir: dir})
	px.setBackend(c2.Endpoint())
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body = b.postForm("/products/"+pid+"/reviews", map[string]string{"csrf": token, "rating": "5", "author": "Zoe", "text": "back online"},
			map[string][]byte{"photos:p.jpg": testimg.JPEG(300, 300, 2)})
		if resp.StatusCode == 200 && strings.Contains(body, "back online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload after depot restart: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond) // retry interval
	}
	waitJobs(t, s, 60*time.Second)
	if page := b.get("/products/"+pid, 200); !regexp.MustCompile(`alt="Photo 1 by Zoe"`).MatchString(page) || strings.Contains(page, "Images are temporarily unavailable") {
		t.Fatal("photo uploaded after the restart is not shown")
	}
}

// putUser adds a key pair that may do anything in S3 (keys without a
// policy may do nothing).
func putUser(ctx context.Context, c *testcluster.Cluster, user, pass string) error {
	ns := c.NSClient()
	if err := ns.PutUser(ctx, nsclient.User{AccessKey: user, Secret: pass}); err != nil {
		return err
	}
	return ns.SetUserPolicy(ctx, user, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
}
