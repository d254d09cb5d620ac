// Package testimg makes images for tests and for the demo catalog: a
// gradient with a few shapes, encoded as JPEG or PNG, and a tiny WebP.
package testimg

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// Draw returns a w x h picture seeded by n.
func Draw(w, h, n int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	hue := func(k int) uint8 { return uint8((n*53 + k) % 256) }
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{hue(x * 200 / max(w, 1)), hue(y*160/max(h, 1) + 90), uint8(120 + (n*31)%120), 255})
		}
	}
	// A disc in the middle so resized images have something to show.
	cx, cy, r := w/2, h/2, min(w, h)/4
	for y := cy - r; y < cy+r; y++ {
		for x := cx - r; x < cx+r; x++ {
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < r*r {
				m.Set(x, y, color.RGBA{255, 255, uint8(255 - (n*17)%128), 255})
			}
		}
	}
	return m
}

// JPEG returns Draw(w, h, n) as JPEG.
func JPEG(w, h, n int) []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, Draw(w, h, n), &jpeg.Options{Quality: 85})
	return b.Bytes()
}

// PNG returns Draw(w, h, n) as PNG.
func PNG(w, h, n int) []byte {
	var b bytes.Buffer
	png.Encode(&b, Draw(w, h, n))
	return b.Bytes()
}

// WebP returns a 1x1 lossless WebP.
func WebP() []byte {
	b, _ := base64.StdEncoding.DecodeString("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
	return b
}
