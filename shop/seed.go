package shop

import (
	"bytes"
	"context"
	"fmt"

	"depot/shop/catalog"
	"depot/shop/internal/testimg"
	"depot/shop/reviews"
)

var (
	seedAdjectives = []string{"Classic", "Rustic", "Modern", "Tiny", "Grand", "Soft", "Bright", "Quiet", "Bold", "Gentle", "Handmade", "Vintage"}
	seedNouns      = []string{"Mug", "Lamp", "Chair", "Notebook", "Backpack", "Teapot", "Vase", "Scarf", "Clock", "Bowl", "Candle", "Blanket"}
)

// Seed loads n demo products with generated images (JPEG and PNG, sent
// through the same upload path as a form) and a few reviews, when the
// catalog is empty. Images are resized by the workers in the background.
func Seed(ctx context.Context, c *catalog.Service, r *reviews.Service, n int) error {
	res, err := c.List(ctx, catalog.ListOptions{PerPage: 1})
	if err != nil || res.Total > 0 {
		return err
	}
	for i := range n {
		title := fmt.Sprintf("%s %s", seedAdjectives[i%len(seedAdjectives)], seedNouns[(i*5+i/len(seedNouns))%len(seedNouns)])
		p, err := c.Create(ctx, catalog.Input{
			Title:       title,
			Description: fmt.Sprintf("A %s from the depot demo catalog, item %d. Its pictures live in depot, erasure-coded.", title, i+1),
			PriceCents:  int64(499 + (i*737)%9000),
			Stock:       (i * 7) % 23,
		})
		if err != nil {
			return err
		}
		for j := range 1 + i%3 {
			img := testimg.JPEG(900, 700, i*3+j)
			if j == 1 {
				img = testimg.PNG(600, 600, i*3+j)
			}
			if _, err := c.UploadImage(ctx, p.ID, bytes.NewReader(img), int64(len(img))); err != nil {
				return fmt.Errorf("seed image of %s: %w", title, err)
			}
		}
		if r != nil && i%4 == 0 {
			for k := range 2 {
				if _, err := r.Create(ctx, p.ID, reviews.Input{Rating: 3 + (i+k)%3, Author: []string{"Ada", "Grace", "Linus", "Ken"}[(i+k)%4], Text: "Exactly as pictured. Would buy again."}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
