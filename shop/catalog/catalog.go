package catalog

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"depot/shop/jobqueue"
	"depot/shop/media"
	"depot/shop/objstore"
)

// Config configures the catalog service. Zero fields take the defaults
// beside them.
type Config struct {
	DBPath string          // bbolt file. Required.
	Store  *objstore.Store // depot over S3. Required.
	Bucket string          // default "catalog"
	// Origins may PUT to the bucket from a browser (CORS). Default "*".
	Origins []string
	// MaxImageBytes bounds an original. Default 20 MiB.
	MaxImageBytes int64
	// MaxImages per product. Default 12.
	MaxImages int
	// PresignExpiry is how long an upload URL works. Default 15m.
	PresignExpiry time.Duration
	// Workers resize images in the background. Default 2.
	Workers int
	// CacheEntries bounds each in-process cache (records, list pages).
	// Default 4096.
	CacheEntries int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Product is a catalog record.
type Product struct {
	ID          string        `json:"id"`
	Title       string        `json:"title"`
	Description string        `json:"description"`
	PriceCents  int64         `json:"price_cents"`
	Stock       int           `json:"stock"`
	Images      []media.Image `json:"images"`
	Created     time.Time     `json:"created"`
	Updated     time.Time     `json:"updated"`
}

// Input is what a client sets on a product.
type Input struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Stock       int    `json:"stock"`
	// Images, when not nil, is the new order of the product's image ids;
	// ids left out are removed.
	Images []string `json:"images,omitempty"`
}

// ListOptions select a page of products.
type ListOptions struct {
	Query   string // case-insensitive substring of the title
	Page    int    // from 1
	PerPage int    // default 24, at most 100
}

// ListResult is a page of products.
type ListResult struct {
	Products []Product `json:"products"`
	Total    int       `json:"total"`
	Page     int       `json:"page"`
	PerPage  int       `json:"per_page"`
}

// Errors callers can test for.
var (
	ErrNotFound = errors.New("product not found")
	ErrInvalid  = errors.New("invalid product")
)

// Service is the catalog service. Close stops its workers.
type Service struct {
	cfg   Config
	db    *bolt.DB
	queue *jobqueue.Queue
	log   *slog.Logger

	gen   atomic.Uint64
	mu    sync.Mutex
	recs  map[string]Product
	lists map[ListOptions]ListResult
	cgen  uint64 // generation the caches hold
}

var (
	bucketProducts = []byte("products")
	bucketJobs     = "jobs"
)

// Open opens the database and starts the image workers. Bucket setup in
// depot is Setup's job, so a catalog starts while depot is down.
func Open(cfg Config) (*Service, error) {
	if cfg.DBPath == "" || cfg.Store == nil {
		return nil, errors.New("catalog: DBPath and Store are required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "catalog"
	}
	if cfg.MaxImageBytes == 0 {
		cfg.MaxImageBytes = 20 << 20
	}
	if cfg.MaxImages == 0 {
		cfg.MaxImages = 12
	}
	if cfg.PresignExpiry == 0 {
		cfg.PresignExpiry = 15 * time.Minute
	}
	if cfg.CacheEntries == 0 {
		cfg.CacheEntries = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := bolt.Open(cfg.DBPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", cfg.DBPath, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketProducts)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, log: cfg.Logger.With("service", "catalog"), recs: map[string]Product{}, lists: map[ListOptions]ListResult{}}
	s.queue, err = jobqueue.New(jobqueue.Config{DB: db, Bucket: bucketJobs, Handle: s.handleJob, Workers: cfg.Workers, Logger: s.log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Setup makes sure the bucket exists, is publicly readable and accepts
// browser uploads.
func (s *Service) Setup(ctx context.Context) error {
	return s.cfg.Store.EnsureBucket(ctx, s.cfg.Bucket, s.cfg.Origins)
}

// Close stops the workers and closes the database.
func (s *Service) Close() error {
	s.queue.Close()
	return s.db.Close()
}

// Generation changes whenever any product changes.
func (s *Service) Generation() uint64 { return s.gen.Load() }

// Available reports whether depot is believed reachable.
func (s *Service) Available() bool { return s.cfg.Store.Available() }

// ImageURL is the public URL of an object of the catalog bucket.
func (s *Service) ImageURL(key string) string { return s.cfg.Store.URL(s.cfg.Bucket, key) }

// PendingJobs is how many background jobs are queued.
func (s *Service) PendingJobs() int { return s.queue.Len() }

func newID() string { return media.NewRecordID() }

func validID(id string) bool {
	if len(id) != 24 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (in *Input) validate() error {
	in.Title = strings.TrimSpace(in.Title)
	in.Description = strings.TrimSpace(in.Description)
	switch {
	case in.Title == "" || utf8.RuneCountInString(in.Title) > 200:
		return fmt.Errorf("%w: title must be 1 to 200 characters", ErrInvalid)
	case len(in.Description) > 10000:
		return fmt.Errorf("%w: description must be at most 10000 bytes", ErrInvalid)
	case in.PriceCents < 0 || in.PriceCents > 1e11:
		return fmt.Errorf("%w: price must be between 0 and 1,000,000,000", ErrInvalid)
	case in.Stock < 0 || in.Stock > 1e9:
		return fmt.Errorf("%w: stock must be between 0 and 1,000,000,000", ErrInvalid)
	case !utf8.ValidString(in.Title) || !utf8.ValidString(in.Description):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalid)
	}
	return nil
}

// changed bumps the generation, which empties the caches.
func (s *Service) changed() { s.gen.Add(1) }

func (s *Service) cached(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.gen.Load(); g != s.cgen {
		clear(s.recs)
		clear(s.lists)
		s.cgen = g
	}
	f()
}

// Create adds a product.
func (s *Service) Create(ctx context.Context, in Input) (Product, error) {
	if err := in.validate(); err != nil {
		return Product{}, err
	}
	now := time.Now().UTC()
	p := Product{ID: newID(), Title: in.Title, Description: in.Description, PriceCents: in.PriceCents, Stock: in.Stock, Images: []media.Image{}, Created: now, Updated: now}
	err := s.db.Update(func(tx *bolt.Tx) error { return put(tx, p) })
	if err != nil {
		return Product{}, err
	}
	s.changed()
	return p, nil
}

func put(tx *bolt.Tx, p Product) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketProducts).Put([]byte(p.ID), v)
}

func get(tx *bolt.Tx, id string) (Product, error) {
	v := tx.Bucket(bucketProducts).Get([]byte(id))
	if v == nil {
		return Product{}, ErrNotFound
	}
	var p Product
	err := json.Unmarshal(v, &p)
	return p, err
}

// Get returns a product from the cache or the database. The result is
// shared: callers must not modify it.
func (s *Service) Get(ctx context.Context, id string) (Product, error) {
	if !validID(id) {
		return Product{}, ErrNotFound
	}
	var (
		p  Product
		ok bool
	)
	s.cached(func() { p, ok = s.recs[id] })
	if ok {
		return p, nil
	}
	g := s.gen.Load()
	err := s.db.View(func(tx *bolt.Tx) (err error) { p, err = get(tx, id); return })
	if err != nil {
		return Product{}, err
	}
	s.cached(func() {
		if s.cgen == g && len(s.recs) < s.cfg.CacheEntries {
			s.recs[id] = p
		}
	})
	return p, nil
}

// Update changes a product's fields and, when in.Images is set, the
// order of its images (removed images are deleted from depot later).
func (s *Service) Update(ctx context.Context, id string, in Input) (Product, error) {
	if err := in.validate(); err != nil {
		return Product{}, err
	}
	var p Product
	var removed []string
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if p, err = get(tx, id); err != nil {
			return err
		}
		p.Title, p.Description, p.PriceCents, p.Stock = in.Title, in.Description, in.PriceCents, in.Stock
		if in.Images != nil {
			var imgs []media.Image
			for _, iid := range in.Images {
				if i := slices.IndexFunc(p.Images, func(im media.Image) bool { return im.ID == iid }); i >= 0 {
					imgs = append(imgs, p.Images[i])
				} else {
					return fmt.Errorf("%w: product has no image %q", ErrInvalid, iid)
				}
			}
			for _, im := range p.Images {
				if !slices.ContainsFunc(imgs, func(x media.Image) bool { return x.ID == im.ID }) {
					removed = append(removed, imageKeys(im)...)
				}
			}
			p.Images = append([]media.Image{}, imgs...)
		}
		p.Updated = time.Now().UTC()
		if len(removed) > 0 {
			if err := jobqueue.Add(tx, bucketJobs, job{Kind: "delete", Keys: removed}); err != nil {
				return err
			}
		}
		return put(tx, p)
	})
	if err != nil {
		return Product{}, err
	}
	s.changed()
	if len(removed) > 0 {
		s.queue.Notify()
	}
	return p, nil
}

func imageKeys(im media.Image) []string {
	keys := []string{im.Original}
	for _, k := range im.Keys {
		keys = append(keys, k)
	}
	return keys
}

// Delete removes a product; its images are deleted from depot later.
func (s *Service) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		p, err := get(tx, id)
		if err != nil {
			return err
		}
		var keys []string
		for _, im := range p.Images {
			keys = append(keys, imageKeys(im)...)
		}
		if len(keys) > 0 {
			if err := jobqueue.Add(tx, bucketJobs, job{Kind: "delete", Keys: keys}); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketProducts).Delete([]byte(id))
	})
	if err != nil {
		return err
	}
	s.changed()
	s.queue.Notify()
	return nil
}

// List returns a page of products, newest first, from the cache when it
// can. The result is shared: callers must not modify it.
func (s *Service) List(ctx context.Context, o ListOptions) (ListResult, error) {
	o.Query = strings.ToLower(strings.TrimSpace(o.Query))
	if o.Page < 1 {
		o.Page = 1
	}
	if o.PerPage <= 0 {
		o.PerPage = 24
	}
	o.PerPage = min(o.PerPage, 100)
	var (
		r  ListResult
		ok bool
	)
	s.cached(func() { r, ok = s.lists[o] })
	if ok {
		return r, nil
	}
	g := s.gen.Load()
	r = ListResult{Products: []Product{}, Page: o.Page, PerPage: o.PerPage}
	skip := (o.Page - 1) * o.PerPage
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketProducts).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if o.Query != "" && !titleMatches(v, o.Query) {
				continue
			}
			r.Total++
			if r.Total <= skip || len(r.Products) >= o.PerPage {
				continue
			}
			var p Product
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			r.Products = append(r.Products, p)
		}
		return nil
	})
	if err != nil {
		return ListResult{}, err
	}
	s.cached(func() {
		if s.cgen == g && len(s.lists) < s.cfg.CacheEntries {
			s.lists[o] = r
		}
	})
	return r, nil
}

func titleMatches(v []byte, q string) bool {
	var t struct {
		Title string `json:"title"`
	}
	if json.Unmarshal(v, &t) != nil {
		return false
	}
	return strings.Contains(strings.ToLower(t.Title), q)
}

// PresignUpload returns a presigned PUT for a browser to upload an
// original straight to depot; AttachUpload then adds it to a product.
func (s *Service) PresignUpload(ctx context.Context) (media.Upload, error) {
	return media.PresignUpload(ctx, s.cfg.Store, s.cfg.Bucket, s.cfg.PresignExpiry)
}

// AttachUpload checks that an uploaded original exists in depot and is an
// image, adds it to the product (pending) and queues its resizing.
func (s *Service) AttachUpload(ctx context.Context, id, key string) (media.Image, error) {
	if !media.ValidUploadKey(key) {
		return media.Image{}, fmt.Errorf("%w: %q is not an upload key", ErrInvalid, key)
	}
	if _, err := s.Get(ctx, id); err != nil {
		return media.Image{}, err
	}
	if _, err := media.Verify(ctx, s.cfg.Store, s.cfg.Bucket, key, s.cfg.MaxImageBytes); err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return media.Image{}, fmt.Errorf("%w: the upload %s did not reach image storage", ErrInvalid, key)
		}
		if errors.Is(err, objstore.ErrUnavailable) {
			return media.Image{}, err
		}
		return media.Image{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return s.attach(id, key)
}

func (s *Service) attach(id, key string) (media.Image, error) {
	im := media.Image{ID: media.NewID(), Original: key, Status: media.StatusPending}
	err := s.db.Update(func(tx *bolt.Tx) error {
		p, err := get(tx, id)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(p.Images, func(x media.Image) bool { return x.Original == key }) {
			return fmt.Errorf("%w: image already attached", ErrInvalid)
		}
		if len(p.Images) >= s.cfg.MaxImages {
			return fmt.Errorf("%w: a product has at most %d images", ErrInvalid, s.cfg.MaxImages)
		}
		p.Images = append(p.Images, im)
		p.Updated = time.Now().UTC()
		if err := put(tx, p); err != nil {
			return err
		}
		return jobqueue.Add(tx, bucketJobs, job{Kind: "resize", Product: id, Image: im.ID})
	})
	if err != nil {
		return media.Image{}, err
	}
	s.changed()
	s.queue.Notify()
	return im, nil
}

// UploadImage stores an original sent to the shop itself (the form
// without JavaScript, API clients) and attaches it. It reads the first
// bytes before contacting depot, so a non-image never reaches depot.
func (s *Service) UploadImage(ctx context.Context, id string, r io.Reader, size int64) (media.Image, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return media.Image{}, err
	}
	if size > s.cfg.MaxImageBytes {
		return media.Image{}, fmt.Errorf("%w: the image is %d bytes; at most %d are accepted", ErrInvalid, size, s.cfg.MaxImageBytes)
	}
	head, body, err := media.ReadHead(r)
	if err != nil {
		return media.Image{}, err
	}
	ct, err := media.Sniff(head)
	if err != nil {
		return media.Image{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		if _, err := rs.Seek(0, io.SeekStart); err == nil {
			body = rs
		}
	}
	if size < 0 {
		b, err := io.ReadAll(io.LimitReader(body, s.cfg.MaxImageBytes+1))
		if err != nil {
			return media.Image{}, err
		}
		if int64(len(b)) > s.cfg.MaxImageBytes {
			return media.Image{}, fmt.Errorf("%w: the image is larger than %d bytes", ErrInvalid, s.cfg.MaxImageBytes)
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	key := media.NewUploadKey()
	if err := s.cfg.Store.Put(ctx, s.cfg.Bucket, key, body, size, ct, ""); err != nil {
		return media.Image{}, err
	}
	return s.attach(id, key)
}

// job is a background job's payload.
type job struct {
	Kind    string   `json:"kind"`
	Product string   `json:"product,omitempty"`
	Image   string   `json:"image,omitempty"`
	Keys    []string `json:"keys,omitempty"`
}

func (s *Service) handleJob(ctx context.Context, payload json.RawMessage) error {
	var j job
	if err := json.Unmarshal(payload, &j); err != nil {
		return jobqueue.Permanent(err)
	}
	switch j.Kind {
	case "delete":
		for _, k := range j.Keys {
			if err := s.cfg.Store.Remove(ctx, s.cfg.Bucket, k); err != nil && !errors.Is(err, objstore.ErrNotFound) {
				return err
			}
		}
		return nil
	case "resize":
		return s.resize(ctx, j.Product, j.Image)
	}
	return jobqueue.Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
}

func (s *Service) resize(ctx context.Context, pid, iid string) error {
	p, err := s.Get(ctx, pid)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted meanwhile
	} else if err != nil {
		return err
	}
	i := slices.IndexFunc(p.Images, func(im media.Image) bool { return im.ID == iid })
	if i < 0 || p.Images[i].Status == media.StatusReady {
		return nil
	}
	im, err := media.Process(ctx, s.cfg.Store, s.cfg.Bucket, "products/"+pid+"/"+iid, p.Images[i], media.CatalogSizes(), s.cfg.MaxImageBytes)
	if errors.Is(err, media.ErrNotImage) || errors.Is(err, objstore.ErrNotFound) {
		im.Status = media.StatusFailed
		s.log.Warn("image cannot be processed", "product", pid, "image", iid, "err", err)
	} else if err != nil {
		return err
	}
	var orphans []string
	err = s.db.Update(func(tx *bolt.Tx) error {
		p, err := get(tx, pid)
		if err != nil {
			orphans = imageKeys(im)
			return nil
		}
		i := slices.IndexFunc(p.Images, func(x media.Image) bool { return x.ID == iid })
		if i < 0 {
			orphans = imageKeys(im)
			return nil
		}
		p.Images = slices.Clone(p.Images)
		p.Images[i] = im
		return put(tx, p)
	})
	if err != nil {
		return err
	}
	s.changed()
	if len(orphans) > 0 {
		return s.queue.Enqueue(job{Kind: "delete", Keys: orphans})
	}
	return nil
}

// WithURLs returns a copy of p whose images carry their public URLs.
func (s *Service) WithURLs(p Product) Product {
	p.Images = slices.Clone(p.Images)
	for i, im := range p.Images {
		urls := map[string]string{}
		for size, k := range im.Keys {
			urls[size] = s.ImageURL(k)
		}
		p.Images[i].URLs = urls
	}
	return p
}
