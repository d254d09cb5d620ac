// Package web owns the shop's server-rendered pages: the product grid,
// the product page with its gallery and reviews, the product form and the
// review form (Go templates, a few lines of plain JavaScript for uploads
// straight to depot), CSRF protection of every form, and a cache of
// rendered grid pages. It reaches the catalog and review services through
// the Catalog and Reviews interfaces and never touches image bytes except
// when a browser without JavaScript posts a file.
package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"depot/shop/catalog"
	"depot/shop/media"
	"depot/shop/objstore"
	"depot/shop/reviews"
)

// Catalog is what the pages need of the catalog service.
type Catalog interface {
	List(ctx context.Context, o catalog.ListOptions) (catalog.ListResult, error)
	Get(ctx context.Context, id string) (catalog.Product, error)
	Create(ctx context.Context, in catalog.Input) (catalog.Product, error)
	Update(ctx context.Context, id string, in catalog.Input) (catalog.Product, error)
	Delete(ctx context.Context, id string) error
	PresignUpload(ctx context.Context) (media.Upload, error)
	AttachUpload(ctx context.Context, id, key string) (media.Image, error)
	UploadImage(ctx context.Context, id string, r io.Reader, size int64) (media.Image, error)
	ImageURL(key string) string
	Available() bool
	Generation() uint64
}

// Reviews is what the pages need of the review service.
type Reviews interface {
	List(ctx context.Context, productID string, page, perPage int) (reviews.Page, error)
	Create(ctx context.Context, productID string, in reviews.Input) (reviews.Review, error)
	StorePhoto(ctx context.Context, r io.Reader, size int64) (string, error)
	PresignUpload(ctx context.Context) (media.Upload, error)
	ImageURL(key string) string
}

// Config configures the pages. Zero fields take the defaults beside them.
type Config struct {
	Catalog Catalog // Required.
	Reviews Reviews // Required.
	// CSRFKey signs CSRF tokens. Default: random at start (tokens then
	// do not survive a restart nor work across replicas).
	CSRFKey []byte
	// MediaOrigins are the origins ("https://media.example:9000") of the
	// depot gateway that browsers load images from and PUT presigned
	// uploads to: the Content-Security-Policy allows them in img-src and
	// connect-src. Default none: the pages' own origin only.
	MediaOrigins []string
	// SecureCookies marks cookies Secure even on plain-HTTP requests, for
	// a shop behind a TLS-terminating proxy. Cookies of requests that
	// came over TLS are Secure anyway.
	SecureCookies bool
	// PerPage is the grid's page size. Default 48.
	PerPage int
	// MaxFormBytes bounds a posted form with its files (the no-JavaScript
	// path). Default 64 MiB.
	MaxFormBytes int64
	// GridCacheEntries bounds the rendered-grid cache. Default 1024.
	GridCacheEntries int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server serves the pages.
type Server struct {
	cfg  Config
	tmpl *template.Template
	log  *slog.Logger
	mux  *http.ServeMux
	csp  string

	mu      sync.Mutex
	grid    map[gridKey][]byte
	gridGen uint64
}

type gridKey struct {
	q        string
	page     int
	degraded bool
}

// New returns the pages' server.
func New(cfg Config) (*Server, error) {
	if cfg.Catalog == nil || cfg.Reviews == nil {
		return nil, errors.New("web: Catalog and Reviews are required")
	}
	if len(cfg.CSRFKey) == 0 {
		cfg.CSRFKey = make([]byte, 32)
		rand.Read(cfg.CSRFKey)
	}
	if cfg.PerPage == 0 {
		cfg.PerPage = 48
	}
	if cfg.MaxFormBytes == 0 {
		cfg.MaxFormBytes = 64 << 20
	}
	if cfg.GridCacheEntries == 0 {
		cfg.GridCacheEntries = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t, err := template.New("").ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	csp, err := contentSecurityPolicy(cfg.MediaOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tmpl: t, log: cfg.Logger.With("service", "web"), grid: map[gridKey][]byte{}, csp: csp}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.gridPage)
	mux.HandleFunc("GET /products/new", s.newPage)
	mux.HandleFunc("POST /products", s.post(s.createProduct))
	mux.HandleFunc("GET /products/{id}", s.productPage)
	mux.HandleFunc("GET /products/{id}/edit", s.editPage)
	mux.HandleFunc("POST /products/{id}", s.post(s.updateProduct))
	mux.HandleFunc("POST /products/{id}/delete", s.post(s.deleteProduct))
	mux.HandleFunc("POST /products/{id}/reviews", s.post(s.createReview))
	mux.HandleFunc("POST /presign/{kind}", s.post(s.presign))
	static := http.FileServerFS(staticFS)
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	}))
	s.mux = mux
	return s, nil
}

// ServeHTTP serves the pages with security headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy returns the pages' policy: scripts, styles and
// fonts from the shop only (no inline code or style attributes), images
// from the shop and the media origins, fetches to the shop (presign) and
// the media origins (presigned PUTs), forms posted to the shop only, and
// no framing by anyone.
func contentSecurityPolicy(media []string) (string, error) {
	var origins string
	for _, o := range media {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("web: media origin %q: want scheme://host[:port]", o)
		}
		origins += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self'" +
		"; img-src 'self'" + origins + "; connect-src 'self'" + origins +
		"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", nil
}

// --- CSRF: a random cookie and a form token that is its HMAC. A forged
// cross-site form can neither read the cookie nor compute the token.

const csrfCookie = "shop_csrf"

func (s *Server) tokenFor(cookie string) string {
	m := hmac.New(sha256.New, s.cfg.CSRFKey)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken returns the form token for this browser, setting its cookie
// when it has none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 20 {
		return s.tokenFor(c.Value)
	}
	b := make([]byte, 24)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || s.cfg.SecureCookies})
	return s.tokenFor(v)
}

func (s *Server) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.FormValue("csrf")
	}
	return hmac.Equal([]byte(got), []byte(s.tokenFor(c.Value)))
}

// post parses a form (multipart or not, bounded) and checks its CSRF
// token before h runs.
func (s *Server) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxFormBytes)
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			err = r.ParseMultipartForm(8 << 20)
		} else if r.Header.Get("X-CSRF-Token") == "" {
			err = r.ParseForm()
		}
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
		}
		if err != nil {
			s.errorPage(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
		if !s.csrfOK(r) {
			s.errorPage(w, r, http.StatusForbidden, "This form has expired or did not come from this shop. Please reload the page and try again.")
			return
		}
		h(w, r)
	}
}

// --- views

type imgView struct {
	URL, Alt, Note string
	W, H           int
}

type cardView struct {
	ID, Title, Price string
	Thumb            imgView
}

type galleryView struct {
	ID   string
	Full string
	Img  imgView
}

type page struct {
	Title, Query, Error string
	Degraded            bool
	CSRF                string
}

// Price formats cents as euros.
func Price(cents int64) string {
	return fmt.Sprintf("€%d.%02d", cents/100, cents%100)
}

func (s *Server) image(im media.Image, size, alt string, url func(string) string, degraded bool) imgView {
	v := imgView{Alt: alt}
	switch {
	case im.Status == media.StatusFailed:
		v.Note = "Image could not be read"
	case im.Status != media.StatusReady:
		v.Note = "Image being prepared…"
	case degraded:
		v.Note = "Image temporarily unavailable"
	default:
		v.URL = url(im.Keys[size])
	}
	return v
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	var b bytes.Buffer
	s.tmpl.ExecuteTemplate(&b, "top", page{Title: http.StatusText(code), Error: msg})
	s.tmpl.ExecuteTemplate(&b, "bottom", nil)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// userMessage turns a service error into words for the page and a code.
func userMessage(err error) (int, string) {
	switch {
	case errors.Is(err, objstore.ErrUnavailable):
		return http.StatusServiceUnavailable, "Image storage is unavailable right now, so the upload did not go through. Please try again in a moment."
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, reviews.ErrNotFound):
		return http.StatusNotFound, "That product does not exist (any more)."
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, reviews.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "The shop took too long to answer. Please try again."
	}
	return http.StatusInternalServerError, "Something went wrong: " + err.Error()
}

// --- grid

type gridView struct {
	page
	Products    []cardView
	Total, Page int
	Pages       int
	Prev, Next  string
}

func (s *Server) gridPage(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	pg, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pg = max(pg, 1)
	degraded := !s.cfg.Catalog.Available()
	key := gridKey{q, pg, degraded}
	gen := s.cfg.Catalog.Generation()
	s.mu.Lock()
	if s.gridGen != gen {
		clear(s.grid)
		s.gridGen = gen
	}
	body, ok := s.grid[key]
	s.mu.Unlock()
	if !ok {
		res, err := s.cfg.Catalog.List(r.Context(), catalog.ListOptions{Query: q, Page: pg, PerPage: s.cfg.PerPage})
		if err != nil {
			code, msg := userMessage(err)
			s.errorPage(w, r, code, msg)
			return
		}
		v := gridView{page: page{Title: "Products", Query: q, Degraded: degraded}, Total: res.Total, Page: pg}
		v.Pages = max(1, (res.Total+s.cfg.PerPage-1)/s.cfg.PerPage)
		link := func(p int) string {
			u := url.Values{}
			if q != "" {
				u.Set("q", q)
			}
			u.Set("page", strconv.Itoa(p))
			return "/?" + u.Encode()
		}
		if pg > 1 {
			v.Prev = link(pg - 1)
		}
		if pg < v.Pages {
			v.Next = link(pg + 1)
		}
		for _, p := range res.Products {
			c := cardView{ID: p.ID, Title: p.Title, Price: Price(p.PriceCents)}
			if len(p.Images) > 0 {
				c.Thumb = s.image(p.Images[0], "thumb", p.Title, s.cfg.Catalog.ImageURL, degraded)
			} else {
				c.Thumb = imgView{Alt: p.Title, Note: "No image"}
			}
			v.Products = append(v.Products, c)
		}
		var buf bytes.Buffer
		if err := s.tmpl.ExecuteTemplate(&buf, "grid.html", v); err != nil {
			s.log.Error("render grid", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		body = buf.Bytes()
		s.mu.Lock()
		if s.gridGen == gen && len(s.grid) < s.cfg.GridCacheEntries {
			s.grid[key] = body
		}
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
}

// --- product page

type reviewView struct {
	Stars, Author, Date, Text string
	Photos                    []galleryView
}

type reviewForm struct {
	Rating       int
	Author, Text string
}

type productView struct {
	page
	P           catalog.Product
	Price       string
	Gallery     []galleryView
	Reviews     reviews.Page
	ReviewViews []reviewView
	MoreReviews string
	Form        reviewForm
	FormError   string
	Ratings     []int
}

func (s *Server) productView(w http.ResponseWriter, r *http.Request, p catalog.Product) (productView, error) {
	degraded := !s.cfg.Catalog.Available()
	v := productView{page: page{Title: p.Title, Degraded: degraded, CSRF: s.csrfToken(w, r)}, P: p, Price: Price(p.PriceCents), Ratings: []int{5, 4, 3, 2, 1}, Form: reviewForm{Rating: 5}}
	for i, im := range p.Images {
		g := galleryView{ID: im.ID, Img: s.image(im, "listing", fmt.Sprintf("%s, picture %d", p.Title, i+1), s.cfg.Catalog.ImageURL, degraded)}
		if g.Img.URL != "" {
			g.Full = s.cfg.Catalog.ImageURL(im.Keys["full"])
		}
		v.Gallery = append(v.Gallery, g)
	}
	rp, _ := strconv.Atoi(r.URL.Query().Get("reviews"))
	rp = max(rp, 1)
	revs, err := s.cfg.Reviews.List(r.Context(), p.ID, rp, 10)
	if err != nil {
		return v, err
	}
	v.Reviews = revs
	if rp*revs.PerPage < revs.Total {
		v.MoreReviews = fmt.Sprintf("/products/%s?reviews=%d#reviews", p.ID, rp+1)
	}
	for _, rv := range revs.Reviews {
		x := reviewView{Stars: strings.Repeat("★", rv.Rating) + strings.Repeat("☆", 5-rv.Rating), Author: rv.Author, Date: rv.Created.Format("2 Jan 2006"), Text: rv.Text}
		for i, ph := range rv.Photos {
			g := galleryView{ID: ph.ID, Img: s.image(ph, "thumb", fmt.Sprintf("Photo %d by %s", i+1, rv.Author), s.cfg.Reviews.ImageURL, degraded)}
			if g.Img.URL != "" {
				g.Full = s.cfg.Reviews.ImageURL(ph.Keys["full"])
			}
			x.Photos = append(x.Photos, g)
		}
		v.ReviewViews = append(v.ReviewViews, x)
	}
	return v, nil
}

func (s *Server) productPage(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Catalog.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		code, msg := userMessage(err)
		s.errorPage(w, r, code, msg)
		return
	}
	v, err := s.productView(w, r, p)
	if err != nil {
		v.Error = "Reviews are unavailable right now."
	}
	s.render(w, http.StatusOK, "product.html", v)
}

// --- product form

type formView struct {
	page
	P          catalog.Product
	PriceInput string
	Gallery    []galleryView
}

func (s *Server) formView(w http.ResponseWriter, r *http.Request, p catalog.Product, msg string) formView {
	degraded := !s.cfg.Catalog.Available()
	v := formView{page: page{Title: "Edit product", Degraded: degraded, CSRF: s.csrfToken(w, r), Error: msg}, P: p}
	if p.ID == "" {
		v.Title = "Add a product"
	}
	if p.ID != "" || p.PriceCents != 0 {
		v.PriceInput = fmt.Sprintf("%d.%02d", p.PriceCents/100, p.PriceCents%100)
	}
	for i, im := range p.Images {
		v.Gallery = append(v.Gallery, galleryView{ID: im.ID, Img: s.image(im, "thumb", fmt.Sprintf("%s, picture %d", p.Title, i+1), s.cfg.Catalog.ImageURL, degraded)})
	}
	return v
}

func (s *Server) newPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "form.html", s.formView(w, r, catalog.Product{}, ""))
}

func (s *Server) editPage(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Catalog.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		code, msg := userMessage(err)
		s.errorPage(w, r, code, msg)
		return
	}
	s.render(w, http.StatusOK, "form.html", s.formView(w, r, p, ""))
}

// ParsePrice reads "12", "12.5" or "12,50" as cents.
func ParsePrice(v string) (int64, error) {
	v = strings.ReplaceAll(strings.TrimSpace(v), ",", ".")
	whole, frac, _ := strings.Cut(v, ".")
	if len(frac) > 2 || whole == "" {
		return 0, fmt.Errorf("%w: price must look like 12.50", catalog.ErrInvalid)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || w < 0 || w > 1e9 {
		return 0, fmt.Errorf("%w: price must look like 12.50", catalog.ErrInvalid)
	}
	return w*100 + f, nil
}

func productInput(r *http.Request) (catalog.Input, error) {
	in := catalog.Input{Title: r.FormValue("title"), Description: r.FormValue("description")}
	var err error
	if in.PriceCents, err = ParsePrice(r.FormValue("price")); err != nil {
		return in, err
	}
	if in.Stock, err = strconv.Atoi(strings.TrimSpace(r.FormValue("stock"))); err != nil {
		return in, fmt.Errorf("%w: stock must be a whole number", catalog.ErrInvalid)
	}
	return in, nil
}

func files(r *http.Request, field string) []*multipart.FileHeader {
	if r.MultipartForm == nil {
		return nil
	}
	var out []*multipart.FileHeader
	for _, fh := range r.MultipartForm.File[field] {
		if fh.Size > 0 || fh.Filename != "" {
			out = append(out, fh)
		}
	}
	return out
}

// addImages attaches presigned uploads and stores posted files.
func (s *Server) addImages(ctx context.Context, r *http.Request, id string) error {
	for _, k := range r.Form["upload_key"] {
		if _, err := s.cfg.Catalog.AttachUpload(ctx, id, k); err != nil {
			return err
		}
	}
	for _, fh := range files(r, "images") {
		f, err := fh.Open()
		if err != nil {
			return err
		}
		_, err = s.cfg.Catalog.UploadImage(ctx, id, f, fh.Size)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", fh.Filename, err)
		}
	}
	return nil
}

func (s *Server) createProduct(w http.ResponseWriter, r *http.Request) {
	in, err := productInput(r)
	if err == nil {
		var p catalog.Product
		if p, err = s.cfg.Catalog.Create(r.Context(), in); err == nil {
			if err := s.addImages(r.Context(), r, p.ID); err != nil {
				code, msg := userMessage(err)
				p, _ = s.cfg.Catalog.Get(r.Context(), p.ID)
				s.render(w, code, "form.html", s.formView(w, r, p, "The product was saved, but an image was not: "+msg))
				return
			}
			http.Redirect(w, r, "/products/"+p.ID, http.StatusSeeOther)
			return
		}
	}
	code, msg := userMessage(err)
	p := catalog.Product{Title: in.Title, Description: in.Description, PriceCents: in.PriceCents, Stock: in.Stock}
	s.render(w, code, "form.html", s.formView(w, r, p, msg))
}

func (s *Server) updateProduct(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, err := s.cfg.Catalog.Get(r.Context(), id)
	if err != nil {
		code, msg := userMessage(err)
		s.errorPage(w, r, code, msg)
		return
	}
	in, err := productInput(r)
	if err == nil {
		remove := r.Form["remove_image"]
		in.Images = []string{}
		for _, im := range cur.Images {
			if !contains(remove, im.ID) {
				in.Images = append(in.Images, im.ID)
			}
		}
		if _, err = s.cfg.Catalog.Update(r.Context(), id, in); err == nil {
			err = s.addImages(r.Context(), r, id)
		}
	}
	if err != nil {
		code, msg := userMessage(err)
		p, _ := s.cfg.Catalog.Get(r.Context(), id)
		if errors.Is(err, catalog.ErrInvalid) {
			p.Title, p.Description, p.PriceCents, p.Stock = in.Title, in.Description, in.PriceCents, in.Stock
		}
		s.render(w, code, "form.html", s.formView(w, r, p, msg))
		return
	}
	http.Redirect(w, r, "/products/"+id, http.StatusSeeOther)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) deleteProduct(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Catalog.Delete(r.Context(), r.PathValue("id")); err != nil {
		code, msg := userMessage(err)
		s.errorPage(w, r, code, msg)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// --- reviews

func (s *Server) createReview(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := s.cfg.Catalog.Get(r.Context(), id)
	if err != nil {
		code, msg := userMessage(err)
		s.errorPage(w, r, code, msg)
		return
	}
	rating, _ := strconv.Atoi(r.FormValue("rating"))
	in := reviews.Input{Rating: rating, Author: r.FormValue("author"), Text: r.FormValue("text"), PhotoKeys: r.Form["upload_key"]}
	fhs := files(r, "photos")
	if len(in.PhotoKeys)+len(fhs) > reviews.MaxPhotos {
		err = fmt.Errorf("%w: at most %d photos", reviews.ErrInvalid, reviews.MaxPhotos)
	}
	for _, fh := range fhs {
		if err != nil {
			break
		}
		var f multipart.File
		if f, err = fh.Open(); err != nil {
			break
		}
		var key string
		key, err = s.cfg.Reviews.StorePhoto(r.Context(), f, fh.Size)
		f.Close()
		if err != nil {
			err = fmt.Errorf("%s: %w", fh.Filename, err)
			break
		}
		in.PhotoKeys = append(in.PhotoKeys, key)
	}
	if err == nil {
		if _, err = s.cfg.Reviews.Create(r.Context(), id, in); err == nil {
			http.Redirect(w, r, "/products/"+id+"#reviews", http.StatusSeeOther)
			return
		}
	}
	code, msg := userMessage(err)
	v, verr := s.productView(w, r, p)
	if verr != nil {
		v.Error = "Reviews are unavailable right now."
	}
	v.Form = reviewForm{Rating: rating, Author: in.Author, Text: in.Text}
	v.FormError = "Your review was not posted: " + msg
	s.render(w, code, "product.html", v)
}

// presign hands the page's script a presigned PUT URL. It answers 503 at
// once when depot is known to be down, so the browser fails fast.
func (s *Server) presign(w http.ResponseWriter, r *http.Request) {
	var (
		up  media.Upload
		err error
	)
	if !s.cfg.Catalog.Available() {
		err = fmt.Errorf("%w: circuit breaker open", objstore.ErrUnavailable)
	} else {
		switch r.PathValue("kind") {
		case "catalog":
			up, err = s.cfg.Catalog.PresignUpload(r.Context())
		case "reviews":
			up, err = s.cfg.Reviews.PresignUpload(r.Context())
		default:
			http.NotFound(w, r)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		code, msg := userMessage(err)
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	json.NewEncoder(w).Encode(up)
}
