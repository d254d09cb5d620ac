package shop_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"depot/internal/testcluster"
	"depot/shop/internal/testimg"
)

// waitJS polls a JavaScript condition until it is true or the deadline.
func waitJS(ctx context.Context, t *testing.T, what, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		// An evaluation may fail while the page navigates (a form was
		// just submitted): that is "not yet", until the deadline.
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: not true after %v (last error: %v); page text:\n%s", what, within, err, text)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test in full mode only")
	}
	chromium := testcluster.Chromium(t)
	c := testcluster.New(t, testcluster.Options{})
	s, srv := startShop(t, c.Endpoint(), c.User, c.Password, 8)
	waitJobs(t, s, 60*time.Second)
	out := t.ArtifactDir()
	photo := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(photo, testimg.JPEG(1024, 768, 42), 0o644); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The grid, with every thumbnail loaded from depot.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(".grid img"))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "thumbnails loaded", `(() => { const im = [...document.querySelectorAll(".grid img")];
		return im.length === 8 && im.every(i => i.complete && i.naturalWidth > 0) })()`, 30*time.Second)
	shot("1-grid.png")

	// 2. A product page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(".grid li:first-child a")), chromedp.WaitVisible(chromedp.ID("rating"))); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "gallery loaded", `[...document.querySelectorAll(".gallery img")].every(i => i.complete && i.naturalWidth > 0)`, 30*time.Second)
	shot("2-product.png")

	// 3. A review with a photo through the real form: the page's script
	// PUTs the photo straight to depot with a presigned URL.
	text := fmt.Sprintf("Chromium was here <b>%d</b>", time.Now().UnixNano())
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("rating"), "4"),
		chromedp.SendKeys(chromedp.ID("author"), "Headless Tester"),
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.SetUploadFiles(chromedp.ID("photos"), []string{photo}),
		chromedp.Click(chromedp.CSS(`form[data-upload="reviews"] button[type=submit]`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(ctx, t, "review shown", fmt.Sprintf(`location.hash === "#reviews" && !!document.body && document.body.innerText.includes(%q)`, text), 30*time.Second)
	shot("3-review-posted.png")

	// 4. Once the worker made the sizes, the photo shows.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
			t.Fatal(err)
		}
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const im = [...document.querySelectorAll(".review .photos img")];
			return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0) })()`))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("review photo never appeared")
		}
		time.Sleep(300 * time.Millisecond) // polling interval
	}
	// The photo went to depot through the presigned PUT, not the shop.
	shot("4-review-photo.png")
	t.Logf("screenshots in %s", out)
}
