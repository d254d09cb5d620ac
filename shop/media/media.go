// Package media owns what the catalog and review services share about
// images: the Image record they keep (object keys only, never bytes), the
// upload key scheme, checking that an uploaded object is an image, and
// decoding (JPEG, PNG, GIF, WebP) and resizing an original into the smaller
// sizes (with github.com/disintegration/imaging), written back to depot.
package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for image.Decode
	"image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp"

	"depot/shop/objstore"
)

// Image statuses.
const (
	StatusPending = "pending" // original stored, sizes not written yet
	StatusReady   = "ready"
	StatusFailed  = "failed" // the original could not be decoded
)

// Image is one stored image: its original's key and, once the worker has
// written them, one key per size.
type Image struct {
	ID       string            `json:"id"`
	Original string            `json:"original"`
	Status   string            `json:"status"`
	Keys     map[string]string `json:"keys,omitempty"` // size name -> key
	Width    int               `json:"width,omitempty"`
	Height   int               `json:"height,omitempty"`
	// URLs are filled in API answers only: size name -> public URL.
	URLs map[string]string `json:"urls,omitempty"`
}

// Key returns the key of a size, or "" when it is not ready.
func (im Image) Key(size string) string {
	if im.Status != StatusReady {
		return ""
	}
	return im.Keys[size]
}

// Size is one derived size: the image is fitted into Width x Height, or
// cropped to fill it when Crop is set. It never grows.
type Size struct {
	Name          string
	Width, Height int
	Crop          bool
}

// CatalogSizes are the sizes of product images.
func CatalogSizes() []Size {
	return []Size{{"thumb", 320, 320, true}, {"listing", 640, 640, false}, {"full", 1600, 1600, false}}
}

// ReviewSizes are the sizes of review photos.
func ReviewSizes() []Size {
	return []Size{{"thumb", 240, 240, true}, {"full", 1280, 1280, false}}
}

// Upload is a presigned upload handed to a browser.
type Upload struct {
	URL     string    `json:"url"`
	Method  string    `json:"method"`
	Key     string    `json:"key"`
	Expires time.Time `json:"expires"`
}

var uploadKeyRE = regexp.MustCompile(`^uploads/[0-9a-f]{32}$`)

// NewUploadKey returns a fresh, unguessable key for an original.
func NewUploadKey() string {
	var b [16]byte
	rand.Read(b[:])
	return "uploads/" + hex.EncodeToString(b[:])
}

// Presigner makes presigned PUT URLs; objstore.Store is one.
type Presigner interface {
	PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (string, error)
}

// PresignUpload returns a presigned PUT for a fresh upload key in bucket,
// valid for expiry: a browser sends an original straight to depot with it.
func PresignUpload(ctx context.Context, p Presigner, bucket string, expiry time.Duration) (Upload, error) {
	key := NewUploadKey()
	u, err := p.PresignPut(ctx, bucket, key, expiry)
	if err != nil {
		return Upload{}, err
	}
	return Upload{URL: u, Method: "PUT", Key: key, Expires: time.Now().Add(expiry).UTC()}, nil
}

// NewRecordID returns a new record id: 24 hex digits, time-ordered in
// its first half, random in the rest.
func NewRecordID() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// ValidUploadKey reports whether key was made by NewUploadKey.
func ValidUploadKey(key string) bool { return uploadKeyRE.MatchString(key) }

// NewID returns a random id for an image.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrNotImage is returned for bytes that are no image this package reads.
var ErrNotImage = errors.New("not a JPEG, PNG, GIF or WebP image")

// Sniff returns the content type of an image's first bytes.
func Sniff(head []byte) (string, error) {
	ct := http.DetectContentType(head)
	switch ct {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return ct, nil
	}
	return "", ErrNotImage
}

// Verify checks that key exists in bucket, holds at most maxBytes and
// starts like an image. It returns the image's content type.
func Verify(ctx context.Context, st *objstore.Store, bucket, key string, maxBytes int64) (string, error) {
	info, head, err := st.Head(ctx, bucket, key, 512)
	if err != nil {
		return "", err
	}
	if info.Size > maxBytes {
		st.Remove(ctx, bucket, key)
		return "", fmt.Errorf("the image is %d bytes; at most %d are accepted", info.Size, maxBytes)
	}
	ct, err := Sniff(head)
	if err != nil {
		st.Remove(ctx, bucket, key)
		return "", err
	}
	return ct, nil
}

// MaxPixels bounds a decoded image (decompression bombs).
const MaxPixels = 50_000_000

// Render decodes an original and encodes each size as JPEG. It returns
// the original's dimensions.
func Render(original []byte, sizes []Size) (map[string][]byte, int, int, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(original))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > MaxPixels {
		return nil, 0, 0, fmt.Errorf("%w: %dx%d pixels is out of bounds", ErrNotImage, cfg.Width, cfg.Height)
	}
	img, err := imaging.Decode(bytes.NewReader(original), imaging.AutoOrientation(true))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	out := make(map[string][]byte, len(sizes))
	for _, s := range sizes {
		var m image.Image
		b := img.Bounds()
		switch {
		case s.Crop:
			w, h := min(s.Width, b.Dx()), min(s.Height, b.Dy())
			m = imaging.Fill(img, w, h, imaging.Center, imaging.Lanczos)
		case b.Dx() <= s.Width && b.Dy() <= s.Height:
			m = img
		default:
			m = imaging.Fit(img, s.Width, s.Height, imaging.Lanczos)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, flatten(m), &jpeg.Options{Quality: 82}); err != nil {
			return nil, 0, 0, err
		}
		out[s.Name] = buf.Bytes()
	}
	return out, img.Bounds().Dx(), img.Bounds().Dy(), nil
}

// flatten draws transparent images onto white (JPEG has no alpha).
func flatten(m image.Image) image.Image {
	if o, ok := m.(interface{ Opaque() bool }); ok && o.Opaque() {
		return m
	}
	bg := imaging.New(m.Bounds().Dx(), m.Bounds().Dy(), image.White.C)
	return imaging.Overlay(bg, m, image.Pt(0, 0), 1)
}

// Process reads the original of im from bucket, writes its sizes under
// prefix (prefix/<size>.jpg, immutable Cache-Control) and returns im
// ready. A bad original gives an error wrapping ErrNotImage.
func Process(ctx context.Context, st *objstore.Store, bucket, prefix string, im Image, sizes []Size, maxBytes int64) (Image, error) {
	orig, err := st.Get(ctx, bucket, im.Original, maxBytes)
	if err != nil {
		return im, err
	}
	out, w, h, err := Render(orig, sizes)
	if err != nil {
		return im, err
	}
	keys := make(map[string]string, len(out))
	for _, s := range sizes {
		key := strings.TrimSuffix(prefix, "/") + "/" + s.Name + ".jpg"
		if err := st.PutBytes(ctx, bucket, key, out[s.Name], "image/jpeg", objstore.ImmutableCacheControl); err != nil {
			return im, err
		}
		keys[s.Name] = key
	}
	im.Keys, im.Width, im.Height, im.Status = keys, w, h, StatusReady
	return im, nil
}

// ReadHead reads up to 512 bytes of r for sniffing and returns a reader
// that yields them again followed by the rest.
func ReadHead(r io.Reader) ([]byte, io.Reader, error) {
	head := make([]byte, 512)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, nil, err
	}
	head = head[:n]
	return head, io.MultiReader(bytes.NewReader(head), r), nil
}
