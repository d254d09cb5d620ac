package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Bench drives the S3 API through minio-go the way warp does: concurrent
// PutObject, then GetObject, of fixed-size objects, and a mixed mode.
type s3Bench struct {
	mc     *minio.Client
	bucket string
	quiet  bool
	cpu    cpuMeter
	// unsigned sends bodies as UNSIGNED-PAYLOAD.
	unsigned bool
	seq      atomic.Int64 // numbers the keys of the put phases
}

func newS3Bench(ctx context.Context, rm *remote, conc int, unsigned bool) (*s3Bench, error) {
	u, err := url.Parse(rm.endpoint)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc * 2
	tr.DisableCompression = true
	mc, err := minio.New(u.Host, &minio.Options{Creds: miniocreds.NewStaticV4(rm.user, rm.password, ""),
		Secure: u.Scheme == "https", Transport: tr, Region: "us-east-1"})
	if err != nil {
		return nil, err
	}
	b := &s3Bench{mc: mc, bucket: fmt.Sprintf("bench-%d", time.Now().UnixNano()), quiet: rm.quiet, cpu: rm.cpuMeter(), unsigned: unsigned}
	if err := mc.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{}); err != nil {
		return nil, fmt.Errorf("bench: create bucket: %w", err)
	}
	return b, nil
}

func benchPayload(size int64) []byte {
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(2, uint64(size)))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	return payload
}

func (b *s3Bench) put(ctx context.Context, key string, payload []byte) error {
	_, err := b.mc.PutObject(ctx, b.bucket, key, bytes.NewReader(payload), int64(len(payload)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true, DisableContentSha256: b.unsigned})
	return err
}

func (b *s3Bench) get(ctx context.Context, key string, size int64) error {
	obj, err := b.mc.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer obj.Close()
	n, err := io.Copy(io.Discard, obj)
	if err == nil && n != size {
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	return err
}

// putPhase puts objects of size bytes for dur and returns their keys.
func (b *s3Bench) putPhase(ctx context.Context, size int64, conc int, dur time.Duration) (benchResult, []string, error) {
	payload := benchPayload(size)
	var mu sync.Mutex
	var keys []string
	put := runLoad(ctx, "s3-put", size, conc, dur, 0, b.quiet, b.cpu, func(ctx context.Context, w int) error {
		// A new key every time, across phases too: an overwrite would
		// also delete the object it replaces.
		key := fmt.Sprintf("obj/%d/%d", size, b.seq.Add(1))
		if err := b.put(ctx, key, payload); err != nil {
			return err
		}
		mu.Lock()
		keys = append(keys, key)
		mu.Unlock()
		return nil
	})
	if len(keys) == 0 {
		return put, nil, errors.New("bench: no S3 put succeeded")
	}
	return put, keys, nil
}

// getPhase gets the objects of keys, round robin, for dur.
func (b *s3Bench) getPhase(ctx context.Context, keys []string, size int64, conc int, dur time.Duration) benchResult {
	var mu sync.Mutex
	var next int
	return runLoad(ctx, "s3-get", size, conc, dur, 0, b.quiet, b.cpu, func(ctx context.Context, w int) error {
		mu.Lock()
		next++
		key := keys[next%len(keys)]
		mu.Unlock()
		return b.get(ctx, key, size)
	})
}

func (b *s3Bench) cleanup(ctx context.Context, keys []string) {
	ch := make(chan minio.ObjectInfo)
	go func() {
		defer close(ch)
		for _, k := range keys {
			ch <- minio.ObjectInfo{Key: k}
		}
	}()
	for range b.mc.RemoveObjects(ctx, b.bucket, ch, minio.RemoveObjectsOptions{}) {
	}
}

// mixed runs warp's mixed mode: 45% GET, 15% PUT, 30% STAT, 10% DELETE
// over a pool of objects seeded first.
func (b *s3Bench) mixed(ctx context.Context, size int64, conc int, dur time.Duration) ([]benchResult, error) {
	payload := benchPayload(size)
	var mu sync.Mutex
	var keys []string
	seq := 0
	newKey := func() string {
		mu.Lock()
		defer mu.Unlock()
		seq++
		return fmt.Sprintf("mixed/%d/%d", size, seq)
	}
	seed := runLoad(ctx, "s3-seed", size, conc, dur, 200, true, nil, func(ctx context.Context, w int) error {
		k := newKey()
		if err := b.put(ctx, k, payload); err != nil {
			return err
		}
		mu.Lock()
		keys = append(keys, k)
		mu.Unlock()
		return nil
	})
	if seed.Ops == 0 {
		return nil, errors.New("bench: mixed: seeding failed")
	}
	lat := map[string][]time.Duration{}
	errs := map[string]int{}
	gone := map[string]bool{}
	pick := func(remove bool) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(keys) == 0 {
			return "", false
		}
		i := rand.IntN(len(keys))
		k := keys[i]
		if remove {
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			gone[k] = true
		}
		return k, true
	}
	// raced reports whether err is a read of a key that a concurrent
	// delete removed after the read picked it: the benchmark's own race,
	// not a failure.
	raced := func(k string, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		return gone[k] && minio.ToErrorResponse(err).Code == "NoSuchKey"
	}
	all := runLoad(ctx, "s3-mixed", size, conc, dur, 0, b.quiet, b.cpu, func(ctx context.Context, w int) error {
		var op string
		var err error
		t0 := time.Now()
		switch p := rand.IntN(100); {
		case p < 45:
			op = "mixed-get"
			if k, ok := pick(false); ok {
				if err = b.get(ctx, k, size); err != nil && raced(k, err) {
					return nil
				}
			}
		case p < 60:
			op = "mixed-put"
			k := newKey()
			if err = b.put(ctx, k, payload); err == nil {
				mu.Lock()
				keys = append(keys, k)
				mu.Unlock()
			}
		case p < 90:
			op = "mixed-stat"
			if k, ok := pick(false); ok {
				if _, err = b.mc.StatObject(ctx, b.bucket, k, minio.StatObjectOptions{}); err != nil && raced(k, err) {
					return nil
				}
			}
		default:
			op = "mixed-delete"
			if k, ok := pick(true); ok {
				err = b.mc.RemoveObject(ctx, b.bucket, k, minio.RemoveObjectOptions{})
			}
		}
		d := time.Since(t0)
		if ctx.Err() != nil {
			return err
		}
		mu.Lock()
		if err != nil {
			errs[op]++
		} else {
			lat[op] = append(lat[op], d)
		}
		mu.Unlock()
		return err
	})
	rs := []benchResult{all}
	for _, op := range []string{"mixed-get", "mixed-put", "mixed-stat", "mixed-delete"} {
		rs = append(rs, summarize(op, size, lat[op], errs[op], all.Elapsed))
	}
	mu.Lock()
	left := append([]string(nil), keys...)
	mu.Unlock()
	b.cleanup(ctx, left)
	return rs, nil
}
