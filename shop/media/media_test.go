package media

import (
	"bytes"
	"errors"
	"image"
	"testing"

	"depot/shop/internal/testimg"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		w, h int
	}{
		{"jpeg", testimg.JPEG(900, 600, 1), 900, 600},
		{"png", testimg.PNG(400, 700, 2), 400, 700},
		{"webp", testimg.WebP(), 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Sniff(tc.in[:min(512, len(tc.in))]); err != nil {
				t.Fatal(err)
			}
			out, w, h, err := Render(tc.in, CatalogSizes())
			if err != nil {
				t.Fatal(err)
			}
			if w != tc.w || h != tc.h {
				t.Fatalf("size %dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
			for _, s := range CatalogSizes() {
				cfg, format, err := image.DecodeConfig(bytes.NewReader(out[s.Name]))
				if err != nil || format != "jpeg" {
					t.Fatalf("%s: %v %s", s.Name, err, format)
				}
				if cfg.Width > s.Width || cfg.Height > s.Height || cfg.Width == 0 {
					t.Fatalf("%s: %dx%d does not fit %dx%d", s.Name, cfg.Width, cfg.Height, s.Width, s.Height)
				}
			}
		})
	}
}

func TestRenderRejects(t *testing.T) {
	if _, err := Sniff([]byte("<html><script>")); !errors.Is(err, ErrNotImage) {
		t.Fatalf("html sniffed as image: %v", err)
	}
	bad := append([]byte{}, testimg.PNG(50, 50, 3)[:60]...)
	if _, _, _, err := Render(bad, ReviewSizes()); !errors.Is(err, ErrNotImage) {
		t.Fatalf("truncated PNG: %v", err)
	}
}

func TestUploadKeys(t *testing.T) {
	k := NewUploadKey()
	if !ValidUploadKey(k) || ValidUploadKey("uploads/../x") || ValidUploadKey("products/"+k[8:]) {
		t.Fatalf("upload key validation wrong for %q", k)
	}
}
