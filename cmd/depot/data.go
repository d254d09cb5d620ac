package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
)

// remote holds the flags every data command shares.
type remote struct {
	endpoint, user, password string
	ca                       string
	quiet                    bool
	hc                       *http.Client // built from ca on first use
	// idleCPU is the server's CPU seconds per second while idle (gossip,
	// background loops), which bench subtracts from each phase's CPU.
	idleCPU float64
}

func (r *remote) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.endpoint, "endpoint", envOr("DEPOT_ENDPOINT", "http://127.0.0.1:9000"), "gateway URL (env DEPOT_ENDPOINT)")
	fs.StringVar(&r.user, "user", envOr("DEPOT_ROOT_USER", ""), "root user (env DEPOT_ROOT_USER)")
	fs.StringVar(&r.password, "password", envOr("DEPOT_ROOT_PASSWORD", ""), "root password (env DEPOT_ROOT_PASSWORD)")
	fs.BoolVar(&r.quiet, "q", false, "no progress bar")
	fs.StringVar(&r.ca, "ca", envOr("DEPOT_CA_FILE", ""), "CA certificate (PEM) that an https gateway's certificate must chain to; default the system's (env DEPOT_CA_FILE)")
}

func (r *remote) url(path string) string { return strings.TrimRight(r.endpoint, "/") + path }

func (r *remote) do(req *http.Request) (*http.Response, error) {
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	if r.hc == nil {
		hc, err := caClient(r.ca)
		if err != nil {
			return nil, err
		}
		r.hc = hc
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		var e struct{ Code, Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s (%s)", resp.Status, e.Error, e.Code)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func (r *remote) bar(size int64, what string) io.Writer {
	if r.quiet || size < 1<<20 {
		return io.Discard
	}
	return progressbar.DefaultBytes(size, what)
}

func runPut(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	var rm remote
	rm.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: depot put FILE...")
	}
	for _, name := range pos {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		bar := rm.bar(st.Size(), filepath.Base(name))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, rm.url("/v1/blobs"), io.TeeReader(f, bar))
		if err != nil {
			f.Close()
			return err
		}
		req.ContentLength = st.Size()
		if ct := mime.TypeByExtension(filepath.Ext(name)); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := rm.do(req)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var out struct {
			Fid  string `json:"fid"`
			Size int64  `json:"size"`
			ETag string `json:"etag"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: bad answer: %w", name, err)
		}
		fmt.Printf("%s\t%d\t%s\t%s\n", out.Fid, out.Size, out.ETag, name)
	}
	return nil
}

func runGet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	var rm remote
	rm.flags(fs)
	out := fs.String("o", "-", "output file ('-' for stdout)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: depot get FID [-o FILE]")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rm.url("/v1/blobs/"+pos[0]), nil)
	if err != nil {
		return err
	}
	resp, err := rm.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var w io.Writer = os.Stdout
	var f *os.File
	if *out != "-" {
		f, err = os.Create(*out)
		if err != nil {
			return err
		}
		w = f
	}
	var bar io.Writer = io.Discard
	if f != nil {
		bar = rm.bar(resp.ContentLength, pos[0])
	}
	n, err := io.Copy(io.MultiWriter(w, bar), resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("short read: %d of %d bytes", n, resp.ContentLength)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// eachFid parses the flags of a command that takes fids, sends one
// request with method per fid and hands each answer to show (may be nil).
func eachFid(ctx context.Context, name, method string, args []string, show func(fid string, resp *http.Response)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var rm remote
	rm.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("usage: depot %s FID...", name)
	}
	for _, fid := range pos {
		req, err := http.NewRequestWithContext(ctx, method, rm.url("/v1/blobs/"+fid), nil)
		if err != nil {
			return err
		}
		resp, err := rm.do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", fid, err)
		}
		resp.Body.Close()
		if show != nil {
			show(fid, resp)
		}
	}
	return nil
}

func runRm(ctx context.Context, args []string) error {
	return eachFid(ctx, "rm", http.MethodDelete, args, nil)
}

func runStat(ctx context.Context, args []string) error {
	return eachFid(ctx, "stat", http.MethodHead, args, func(fid string, resp *http.Response) {
		fmt.Printf("%s\tsize=%d\tetag=%s\ttype=%s\n", fid, resp.ContentLength,
			strings.Trim(resp.Header.Get("ETag"), `"`), resp.Header.Get("Content-Type"))
	})
}

func runHealthcheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9000/healthz", "URL that must answer 200")
	ca := fs.String("ca", envOr("DEPOT_CA_FILE", ""), "CA certificate (PEM) that an https URL's server certificate must chain to; default the system's (env DEPOT_CA_FILE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hc, err := caClient(*ca)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	return nil
}
