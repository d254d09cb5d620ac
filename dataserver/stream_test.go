package dataserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"depot"
)

// readRun fetches a needle run and returns its frames and bodies.
func readRun(t *testing.T, c *http.Client, url string) ([]Frame, [][]byte, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	fr := NewFrameReader(resp.Body, maxNeedleSize)
	var frames []Frame
	var bodies [][]byte
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return frames, bodies, nil
		}
		if err != nil {
			return frames, bodies, err
		}
		var b []byte
		if f.Kind == FrameNeedle {
			b, err = fr.Body(nil)
			f = fr.Current() // a record frame's cookie, or corrupt
			if err != nil && f.Kind != FrameCorrupt {
				return frames, bodies, err
			}
			if f.Kind == FrameCorrupt {
				b = nil
			}
		}
		frames, bodies = append(frames, f), append(bodies, b)
	}
}

func TestServer_NeedleRun(t *testing.T) {
	s, c, base := MustStartServer(t, nil)
	sizes := map[string]int{"1": 0, "2": 100, "3": 3*defaultBlock + 5, "a": 40 << 10, "b": 7, "c": 2 * defaultBlock}
	data := make(map[depot.NeedleID][]byte)
	for id, n := range sizes {
		var nid uint64
		fmt.Sscanf(id, "%x", &nid)
		data[depot.NeedleID(nid)] = payload(depot.NeedleID(nid), n)
		resp, body := do(t, c, "PUT", base+"/shard/1/0/"+id+"?cookie=0000000"+id, bytes.NewReader(data[depot.NeedleID(nid)]))
		wantStatus(t, resp, body, 201)
	}
	resp, body := do(t, c, "DELETE", base+"/shard/1/0/b?cookie=0000000b", nil)
	wantStatus(t, resp, body, 204)
	path, off := needleOffset(t, s.Store(), 1, 0, 3)
	flipByte(t, path, off+headerSize+2*(defaultBlock+crcSize)+1)

	check := func(t *testing.T, query string, want []depot.NeedleID) {
		t.Helper()
		frames, bodies, err := readRun(t, c, base+"/shard/1/0/needles"+query)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != len(want) {
			t.Fatalf("%d frames %+v, want needles %v", len(frames), frames, want)
		}
		for i, f := range frames {
			if f.ID != want[i] {
				t.Fatalf("frame %d is needle %x, want %x", i, uint64(f.ID), uint64(want[i]))
			}
			if f.Cookie != depot.Cookie(f.ID) {
				t.Fatalf("needle %x: cookie %x", uint64(f.ID), uint32(f.Cookie))
			}
			if f.ID == 3 {
				if f.Kind != FrameCorrupt || bodies[i] != nil {
					t.Fatalf("damaged needle 3 sent as kind %d with %d bytes", f.Kind, len(bodies[i]))
				}
				continue
			}
			if f.Kind != FrameNeedle || f.Size != int64(len(data[f.ID])) || !bytes.Equal(bodies[i], data[f.ID]) {
				t.Fatalf("needle %x: kind %d, %d bytes, want %d", uint64(f.ID), f.Kind, len(bodies[i]), len(data[f.ID]))
			}
		}
	}
	// Verified by the sender, and raw: records straight from the file
	// (sendfile), verified by the FrameReader, with the same outcome.
	for _, format := range []string{"", "format=raw&"} {
		name := "Verified"
		if format != "" {
			name = "Raw"
		}
		t.Run(name, func(t *testing.T) {
			t.Run("All", func(t *testing.T) { check(t, "?"+format, []depot.NeedleID{1, 2, 3, 0xa, 0xc}) })
			t.Run("After", func(t *testing.T) { check(t, "?"+format+"after=2", []depot.NeedleID{3, 0xa, 0xc}) })
			t.Run("Until", func(t *testing.T) { check(t, "?"+format+"after=1&until=a", []depot.NeedleID{2, 3, 0xa}) })
			t.Run("Empty", func(t *testing.T) { check(t, "?"+format+"after=c", nil) })
			t.Run("NoShard", func(t *testing.T) {
				resp, body := do(t, c, "GET", base+"/shard/9/0/needles?"+format, nil)
				wantStatus(t, resp, body, 404)
			})
		})
	}
	t.Run("NoShard", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/shard/9/0/needles", nil)
		wantStatus(t, resp, body, 404)
	})
	t.Run("BadBound", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/shard/1/0/needles?after=xyz", nil)
		wantStatus(t, resp, body, 400)
	})
	t.Run("Auth", func(t *testing.T) {
		resp, err := http.Get(base + "/shard/1/0/needles")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d without a token", resp.StatusCode)
		}
	})
}

func TestFrameReader_CutShort(t *testing.T) {
	var buf bytes.Buffer
	var hdr [FrameHeaderSize]byte
	Frame{ID: 7, Cookie: 1, Size: 10}.put(hdr[:])
	buf.Write(hdr[:])
	buf.WriteString("0123456789")
	Frame{ID: 8, Cookie: 1, Size: 10}.put(hdr[:])
	buf.Write(hdr[:])
	buf.WriteString("01234")
	fr := NewFrameReader(bytes.NewReader(buf.Bytes()), 1<<20)
	if f, err := fr.Next(); err != nil || f.ID != 7 {
		t.Fatalf("first frame %+v, %v", f, err)
	}
	// The body is skipped when not read.
	if f, err := fr.Next(); err != nil || f.ID != 8 {
		t.Fatalf("second frame %+v, %v", f, err)
	}
	if _, err := fr.Body(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: %v", err)
	}
	// No end frame: cut short.
	fr = NewFrameReader(bytes.NewReader(buf.Bytes()[:FrameHeaderSize+10]), 1<<20)
	fr.Next()
	if _, err := fr.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("run without an end frame: %v", err)
	}
	// A needle over the limit is refused.
	fr = NewFrameReader(bytes.NewReader(buf.Bytes()), 5)
	if _, err := fr.Next(); !errors.Is(err, depot.ErrCorrupt) {
		t.Fatalf("oversized needle: %v", err)
	}
}

func TestStore_WriteNoSync(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncGroup, FsyncNone} {
		t.Run(string(policy), func(t *testing.T) {
			cfg := DefaultStoreConfig(t.TempDir())
			cfg.Fsync = policy
			s, err := OpenStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Sync(ctx, 1, 0); !errors.Is(err, depot.ErrNotFound) {
				t.Fatalf("Sync of a missing shard file: %v", err)
			}
			for id := range depot.NeedleID(20) {
				b := payload(id, int(id)*1000)
				if _, err := s.WriteNoSync(ctx, 1, 0, id+1, 5, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Sync(ctx, 1, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = OpenStore(cfg); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for id := range depot.NeedleID(20) {
				got, err := s.Read(ctx, 1, 0, id+1, 5)
				if err != nil || !bytes.Equal(got, payload(id, int(id)*1000)) {
					t.Fatalf("needle %d after reopening: %d bytes, %v", id+1, len(got), err)
				}
			}
		})
	}
}
