package testcluster_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// consoleLog collects what the page wrote to the console and the
// exceptions it threw.
type consoleLog struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleLog) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, s)
}

func (c *consoleLog) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// TestStatusPage opens the nameserver's /ui in headless chromium: it shows
// the live cluster's numbers and the same verdict as `depot admin status`,
// and, without being reloaded, shows a killed dataserver dead.
func TestStatusPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test in full mode only")
	}
	chromium := testcluster.Chromium(t)
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour})
	ctx := context.Background()
	if _, err := c.Client().Put(ctx, strings.NewReader("volumes exist once something is written"), 39, client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := c.NSClient()
	out := t.ArtifactDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	var console consoleLog
	if err := chromedp.Listen(bctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			console.add(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			console.add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		}
	}); err != nil {
		t.Fatal(err)
	}

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); return e ? e.innerText : "" })()`, sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// cliVerdict is what `depot admin status` says now.
	cliVerdict := func() nsclient.Health {
		t.Helper()
		st, err := ns.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ns.RepairStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		vols, err := ns.Volumes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return nsclient.Assess(st, rs, vols)
	}
	// sameVerdict polls until the page's verdict is the CLI's.
	sameVerdict := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			h := cliVerdict()
			page := text("#verdict")
			if h.Health == want && page == h.Health+" "+h.Verdict {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page says %q, admin status says %s: %s (want %s)", page, h.Health, h.Verdict, want)
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}

	// The page needs the admin credential; a browser sends it as Basic
	// auth, which the header below stands for (it also reaches the page's
	// own fetches).
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+c.Key.String()))
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": basic}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(c.NS.Server.URL()+"/ui"), chromedp.WaitVisible(chromedp.ID("dataservers"))); err != nil {
		t.Fatal(err)
	}
	if got, want := text("#alive"), fmt.Sprint(c.Dataservers()); got != want {
		t.Errorf("alive dataservers on the page: %q, want %s", got, want)
	}
	table := text("#dataservers")
	for i := range c.Dataservers() {
		if id := node.DataserverID(i); !strings.Contains(table, id) {
			t.Errorf("dataserver %s is not on the page:\n%s", id, table)
		}
	}
	bars, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#dataservers tr[data-id] .bar").length`))
	if err != nil {
		t.Fatal(err)
	}
	if bars != c.Dataservers() {
		t.Errorf("%d space bars, want one per dataserver (%d)", bars, c.Dataservers())
	}
	sameVerdict(nsclient.Healthy)
	shot("1-healthy.png")

	// Kill a dataserver; the page, left alone, shows it dead.
	if err := c.KillDataserver(0); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(0)
	dead := node.DataserverID(0)
	waitJS(bctx, t, dead+" shown dead", fmt.Sprintf(
		`(() => { const r = document.querySelector('#dataservers tr[data-id=%q]'); return !!r && r.dataset.state === "dead" })()`, dead),
		30*time.Second)
	if got := text("#suspect"); got != "0" {
		t.Errorf("suspect dataservers on the page: %q, want 0", got)
	}
	if got := text("#dead"); got != "1" {
		t.Errorf("dead dataservers on the page: %q, want 1", got)
	}
	if got, want := text("#alive"), fmt.Sprint(c.Dataservers()-1); got != want {
		t.Errorf("alive dataservers on the page after a kill: %q, want %s", got, want)
	}
	sameVerdict(nsclient.Degraded)
	shot("2-one-dead.png")

	if errs := console.list(); len(errs) > 0 {
		t.Errorf("the page wrote to the console or threw:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s", out)
}

// waitJS polls a JavaScript condition until it is true or the deadline.
func waitJS(ctx context.Context, t *testing.T, what, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: not true after %v; page text:\n%s", what, within, text)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}
