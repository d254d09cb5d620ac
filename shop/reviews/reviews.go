package reviews

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"depot/shop/jobqueue"
	"depot/shop/media"
	"depot/shop/objstore"
)

// Config configures the review service. Zero fields take the defaults
// beside them.
type Config struct {
	DBPath string          // bbolt file. Required.
	Store  *objstore.Store // depot over S3. Required.
	Bucket string          // default "reviews"
	// Origins may PUT to the bucket from a browser (CORS). Default "*".
	Origins []string
	// MaxPhotoBytes bounds an original. Default 20 MiB.
	MaxPhotoBytes int64
	// PresignExpiry is how long an upload URL works. Default 15m.
	PresignExpiry time.Duration
	// Workers resize photos in the background. Default 2.
	Workers int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// MaxPhotos is how many photos a review may have.
const MaxPhotos = 5

// Review is one review of a product.
type Review struct {
	ID        string        `json:"id"`
	ProductID string        `json:"product_id"`
	Rating    int           `json:"rating"`
	Text      string        `json:"text"`
	Author    string        `json:"author"`
	Photos    []media.Image `json:"photos"`
	Created   time.Time     `json:"created"`
}

// Input is a new review.
type Input struct {
	Rating    int      `json:"rating"`
	Text      string   `json:"text"`
	Author    string   `json:"author"`
	PhotoKeys []string `json:"photo_keys,omitempty"`
}

// Page is a page of a product's reviews with its rating summary.
type Page struct {
	Reviews []Review `json:"reviews"`
	Total   int      `json:"total"`
	Page    int      `json:"page"`
	PerPage int      `json:"per_page"`
	Summary
}

// Summary is a product's rating summary.
type Summary struct {
	Count   int     `json:"count"`
	Average float64 `json:"average"`
}

type summaryRec struct {
	Count int   `json:"count"`
	Sum   int64 `json:"sum"`
}

// Errors callers can test for.
var (
	ErrNotFound = errors.New("review not found")
	ErrInvalid  = errors.New("invalid review")
)

var (
	bucketReviews = []byte("reviews")
	bucketSummary = []byte("summary")
	bucketByID    = []byte("byid")
	bucketJobs    = "jobs"
)

// Service is the review service. Close stops its workers.
type Service struct {
	cfg   Config
	db    *bolt.DB
	queue *jobqueue.Queue
	log   *slog.Logger
	gen   atomic.Uint64
}

// Open opens the database and starts the photo workers.
func Open(cfg Config) (*Service, error) {
	if cfg.DBPath == "" || cfg.Store == nil {
		return nil, errors.New("reviews: DBPath and Store are required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "reviews"
	}
	if cfg.MaxPhotoBytes == 0 {
		cfg.MaxPhotoBytes = 20 << 20
	}
	if cfg.PresignExpiry == 0 {
		cfg.PresignExpiry = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := bolt.Open(cfg.DBPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("reviews: open %s: %w", cfg.DBPath, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketReviews, bucketSummary, bucketByID} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, log: cfg.Logger.With("service", "reviews")}
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

// Generation changes whenever any review changes.
func (s *Service) Generation() uint64 { return s.gen.Load() }

// ImageURL is the public URL of an object of the reviews bucket.
func (s *Service) ImageURL(key string) string { return s.cfg.Store.URL(s.cfg.Bucket, key) }

// PendingJobs is how many background jobs are queued.
func (s *Service) PendingJobs() int { return s.queue.Len() }

func newID() string { return media.NewRecordID() }

func validID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (in *Input) validate() error {
	in.Text = strings.TrimSpace(in.Text)
	in.Author = strings.TrimSpace(in.Author)
	switch {
	case in.Rating < 1 || in.Rating > 5:
		return fmt.Errorf("%w: rating must be 1 to 5", ErrInvalid)
	case in.Author == "" || utf8.RuneCountInString(in.Author) > 80:
		return fmt.Errorf("%w: author name must be 1 to 80 characters", ErrInvalid)
	case len(in.Text) > 5000:
		return fmt.Errorf("%w: text must be at most 5000 bytes", ErrInvalid)
	case !utf8.ValidString(in.Text) || !utf8.ValidString(in.Author):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalid)
	case len(in.PhotoKeys) > MaxPhotos:
		return fmt.Errorf("%w: at most %d photos", ErrInvalid, MaxPhotos)
	}
	for i, k := range in.PhotoKeys {
		if !media.ValidUploadKey(k) || slices.Contains(in.PhotoKeys[:i], k) {
			return fmt.Errorf("%w: %q is not an upload key", ErrInvalid, k)
		}
	}
	return nil
}

// Create checks every photo in depot (it exists and is an image), stores
// the review with its photos pending and queues their resizing.
func (s *Service) Create(ctx context.Context, productID string, in Input) (Review, error) {
	if !validID(productID) {
		return Review{}, fmt.Errorf("%w: bad product id", ErrInvalid)
	}
	if err := in.validate(); err != nil {
		return Review{}, err
	}
	r := Review{ID: newID(), ProductID: productID, Rating: in.Rating, Text: in.Text, Author: in.Author, Photos: []media.Image{}, Created: time.Now().UTC()}
	for _, k := range in.PhotoKeys {
		if _, err := media.Verify(ctx, s.cfg.Store, s.cfg.Bucket, k, s.cfg.MaxPhotoBytes); err != nil {
			switch {
			case errors.Is(err, objstore.ErrUnavailable):
				return Review{}, err
			case errors.Is(err, objstore.ErrNotFound):
				return Review{}, fmt.Errorf("%w: the photo upload %s did not reach image storage", ErrInvalid, k)
			}
			return Review{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		r.Photos = append(r.Photos, media.Image{ID: media.NewID(), Original: k, Status: media.StatusPending})
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketReviews).Put([]byte(productID+"/"+r.ID), v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByID).Put([]byte(r.ID), []byte(productID)); err != nil {
			return err
		}
		var sum summaryRec
		if v := tx.Bucket(bucketSummary).Get([]byte(productID)); v != nil {
			json.Unmarshal(v, &sum)
		}
		sum.Count++
		sum.Sum += int64(r.Rating)
		sv, _ := json.Marshal(sum)
		if err := tx.Bucket(bucketSummary).Put([]byte(productID), sv); err != nil {
			return err
		}
		for _, p := range r.Photos {
			if err := jobqueue.Add(tx, bucketJobs, job{Kind: "resize", Product: productID, Review: r.ID, Image: p.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Review{}, err
	}
	s.gen.Add(1)
	s.queue.Notify()
	return r, nil
}

// StorePhoto stores a photo sent to the shop itself (the form without
// JavaScript, API clients) and returns its upload key for Input.PhotoKeys.
// The first bytes are checked before depot is contacted.
func (s *Service) StorePhoto(ctx context.Context, r io.Reader, size int64) (string, error) {
	if size > s.cfg.MaxPhotoBytes {
		return "", fmt.Errorf("%w: the photo is %d bytes; at most %d are accepted", ErrInvalid, size, s.cfg.MaxPhotoBytes)
	}
	head, body, err := media.ReadHead(r)
	if err != nil {
		return "", err
	}
	ct, err := media.Sniff(head)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if rs, ok := r.(io.ReadSeeker); ok {
		if _, err := rs.Seek(0, io.SeekStart); err == nil {
			body = rs
		}
	}
	if size < 0 {
		b, err := io.ReadAll(io.LimitReader(body, s.cfg.MaxPhotoBytes+1))
		if err != nil {
			return "", err
		}
		if int64(len(b)) > s.cfg.MaxPhotoBytes {
			return "", fmt.Errorf("%w: the photo is larger than %d bytes", ErrInvalid, s.cfg.MaxPhotoBytes)
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	key := media.NewUploadKey()
	if err := s.cfg.Store.Put(ctx, s.cfg.Bucket, key, body, size, ct, ""); err != nil {
		return "", err
	}
	return key, nil
}

// PresignUpload returns a presigned PUT for a browser to upload a photo
// straight to depot; its key then goes into Input.PhotoKeys.
func (s *Service) PresignUpload(ctx context.Context) (media.Upload, error) {
	return media.PresignUpload(ctx, s.cfg.Store, s.cfg.Bucket, s.cfg.PresignExpiry)
}

// Get returns one review.
func (s *Service) Get(ctx context.Context, id string) (Review, error) {
	var r Review
	err := s.db.View(func(tx *bolt.Tx) error {
		pid := tx.Bucket(bucketByID).Get([]byte(id))
		if pid == nil {
			return ErrNotFound
		}
		v := tx.Bucket(bucketReviews).Get([]byte(string(pid) + "/" + id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// List returns a page of a product's reviews, newest first, with its
// rating summary.
func (s *Service) List(ctx context.Context, productID string, page, perPage int) (Page, error) {
	if page < 1 {
		page = 1
	}
	if perPage <= 0 {
		perPage = 10
	}
	perPage = min(perPage, 100)
	out := Page{Reviews: []Review{}, Page: page, PerPage: perPage}
	if !validID(productID) {
		return out, nil
	}
	prefix := []byte(productID + "/")
	skip := (page - 1) * perPage
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSummary).Get([]byte(productID)); v != nil {
			var sum summaryRec
			if err := json.Unmarshal(v, &sum); err != nil {
				return err
			}
			out.Total = sum.Count
			out.Count = sum.Count
			if sum.Count > 0 {
				out.Average = float64(sum.Sum) / float64(sum.Count)
			}
		}
		c := tx.Bucket(bucketReviews).Cursor()
		// Seek past the last key of the prefix, then walk back.
		end := append(slices.Clone(prefix[:len(prefix)-1]), '/'+1)
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		n := 0
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out.Reviews) < perPage; k, v = c.Prev() {
			n++
			if n <= skip {
				continue
			}
			var r Review
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out.Reviews = append(out.Reviews, r)
		}
		return nil
	})
	return out, err
}

// Summary returns a product's rating summary.
func (s *Service) Summary(ctx context.Context, productID string) (Summary, error) {
	p, err := s.List(ctx, productID, 1, 1)
	return p.Summary, err
}

type job struct {
	Kind    string `json:"kind"`
	Product string `json:"product"`
	Review  string `json:"review"`
	Image   string `json:"image"`
}

func (s *Service) handleJob(ctx context.Context, payload json.RawMessage) error {
	var j job
	if err := json.Unmarshal(payload, &j); err != nil || j.Kind != "resize" {
		return jobqueue.Permanent(fmt.Errorf("bad job %s", payload))
	}
	key := []byte(j.Product + "/" + j.Review)
	var r Review
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketReviews).Get(key)
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	i := slices.IndexFunc(r.Photos, func(im media.Image) bool { return im.ID == j.Image })
	if i < 0 || r.Photos[i].Status == media.StatusReady {
		return nil
	}
	im, err := media.Process(ctx, s.cfg.Store, s.cfg.Bucket, "reviews/"+r.ID+"/"+j.Image, r.Photos[i], media.ReviewSizes(), s.cfg.MaxPhotoBytes)
	if errors.Is(err, media.ErrNotImage) || errors.Is(err, objstore.ErrNotFound) {
		im.Status = media.StatusFailed
		s.log.Warn("photo cannot be processed", "review", r.ID, "image", j.Image, "err", err)
	} else if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketReviews).Get(key)
		if v == nil {
			return nil
		}
		var cur Review
		if err := json.Unmarshal(v, &cur); err != nil {
			return err
		}
		if i := slices.IndexFunc(cur.Photos, func(x media.Image) bool { return x.ID == j.Image }); i >= 0 {
			cur.Photos[i] = im
		}
		nv, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketReviews).Put(key, nv)
	})
	if err == nil {
		s.gen.Add(1)
	}
	return err
}

// WithURLs returns a copy of r whose photos carry their public URLs.
func (s *Service) WithURLs(r Review) Review {
	r.Photos = slices.Clone(r.Photos)
	for i, im := range r.Photos {
		urls := map[string]string{}
		for size, k := range im.Keys {
			urls[size] = s.ImageURL(k)
		}
		r.Photos[i].URLs = urls
	}
	return r
}
