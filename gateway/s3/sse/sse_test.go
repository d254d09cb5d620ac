package sse

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"depot"
)

func mustKeyring(t testing.TB, text string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// seal encrypts plain as one stream and returns its record and stored bytes.
func seal(t testing.TB, kek KEK, plain []byte, chunk int) (depot.Stream, []byte) {
	t.Helper()
	e, err := NewEncrypter(kek, bytes.NewReader(plain), int64(len(plain)), chunk)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(stored)) != e.StoredSize() || int64(len(stored)) != e.Stream().StoredSize() {
		t.Fatalf("stored %d bytes, StoredSize %d", len(stored), e.StoredSize())
	}
	if sum := md5.Sum(plain); !bytes.Equal(e.MD5(), sum[:]) {
		t.Fatal("MD5 is not the plaintext's")
	}
	return e.Stream(), stored
}

func fetchFrom(stored []byte) Fetch {
	return func(off, n int64) (io.ReadCloser, error) {
		if off < 0 || off+n > int64(len(stored)) {
			return nil, errors.New("fetch outside stored bytes")
		}
		return io.NopCloser(bytes.NewReader(stored[off : off+n])), nil
	}
}

func readRange(kek KEK, streams []depot.Stream, stored []byte, off, n int64) ([]byte, error) {
	r, err := NewReader(kek, streams, off, n, fetchFrom(stored))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestStream_Ranges reads random ranges of multi-stream objects, including
// every range that starts or ends at or beside a chunk boundary, and checks
// that each fetch asks for whole chunks only.
func TestStream_Ranges(t *testing.T) {
	kr := mustKeyring(t, "1:"+hex.EncodeToString(testKey(1)))
	rng := rand.New(rand.NewPCG(1, 2))
	const chunk = 1000
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 17}
	var plain, stored []byte
	var streams []depot.Stream
	for _, n := range sizes {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		st, s := seal(t, kr, p, chunk)
		plain, stored = append(plain, p...), append(stored, s...)
		streams = append(streams, st)
	}
	total := int64(len(plain))
	check := func(off, n int64) {
		t.Helper()
		var fetched int64
		fetch := func(o, k int64) (io.ReadCloser, error) {
			fetched += k
			return fetchFrom(stored)(o, k)
		}
		r, err := NewReader(kr, streams, off, n, fetch)
		if err != nil {
			t.Fatalf("range %d+%d: %v", off, n, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("range %d+%d: %v", off, n, err)
		}
		if !bytes.Equal(got, plain[off:off+n]) {
			t.Fatalf("range %d+%d: wrong bytes", off, n)
		}
		// Exactly the chunks the range touches are fetched.
		var want, at int64
		for _, st := range streams {
			for c := int64(0); c < st.Chunks(); c++ {
				lo, hi := at+c*chunk, at+min((c+1)*chunk, st.Size)
				if lo < off+n && hi > off {
					want += hi - lo + depot.StreamOverhead
				}
			}
			at += st.Size
		}
		if fetched != want {
			t.Fatalf("range %d+%d: fetched %d stored bytes, want %d", off, n, fetched, want)
		}
	}
	var bounds []int64
	var at int64
	for _, n := range sizes {
		for c := int64(0); c <= int64(n); c += chunk {
			bounds = append(bounds, at+c)
		}
		at += int64(n)
	}
	for _, b := range bounds {
		for _, d := range []int64{-1, 0, 1} {
			for _, e := range []int64{-1, 0, 1, chunk, total} {
				off := b + d
				end := min(b+e, total)
				if off >= 0 && off <= total && end > off {
					check(off, end-off)
				}
			}
		}
	}
	for range 500 {
		off := rng.Int64N(total + 1)
		check(off, rng.Int64N(total-off+1))
	}
	check(0, total)
	if _, err := readRange(kr, streams, stored, 1, total); !errors.Is(err, depot.ErrBadRequest) {
		t.Fatalf("range past the end: %v", err)
	}
}

// TestStream_Tamper shows that changed, moved, cut or spliced stored bytes
// never read back.
func TestStream_Tamper(t *testing.T) {
	kr := mustKeyring(t, "1:"+base64.StdEncoding.EncodeToString(testKey(2)))
	const chunk = 100
	plain := bytes.Repeat([]byte("0123456789"), 45) // 5 chunks
	st, stored := seal(t, kr, plain, chunk)
	sealed := chunk + depot.StreamOverhead
	read := func(st depot.Stream, stored []byte) error {
		_, err := readRange(kr, []depot.Stream{st}, stored, 0, st.Size)
		return err
	}
	if err := read(st, stored); err != nil {
		t.Fatal(err)
	}
	t.Run("BitFlip", func(t *testing.T) {
		b := bytes.Clone(stored)
		b[sealed+3] ^= 1
		if err := read(st, b); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatal(err)
		}
	})
	t.Run("Swap", func(t *testing.T) {
		b := bytes.Clone(stored)
		copy(b[:sealed], stored[sealed:2*sealed])
		copy(b[sealed:2*sealed], stored[:sealed])
		if err := read(st, b); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatal(err)
		}
	})
	t.Run("Truncate", func(t *testing.T) {
		// Drop the last chunk and claim the object ends there: the new
		// last chunk was not sealed as last.
		short := st
		short.Size = 4 * chunk
		if err := read(short, stored[:4*sealed]); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatal(err)
		}
		if err := read(st, stored[:len(stored)-1]); err == nil {
			t.Fatal("cut stored bytes read")
		}
	})
	t.Run("Splice", func(t *testing.T) {
		st2, stored2 := seal(t, kr, plain, chunk)
		b := bytes.Clone(stored)
		copy(b[2*sealed:3*sealed], stored2[2*sealed:3*sealed])
		if err := read(st, b); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatal(err)
		}
		_ = st2
	})
	t.Run("WrongNonce", func(t *testing.T) {
		bad := st
		bad.Nonce = bytes.Clone(st.Nonce)
		bad.Nonce[0] ^= 1
		if err := read(bad, stored); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatal(err)
		}
	})
}

// TestKeyring_Rotate: streams sealed under key 1 open after key 2 became
// active; a keyring without key 1 says so.
func TestKeyring_Rotate(t *testing.T) {
	k1 := "1:" + hex.EncodeToString(testKey(1))
	k2 := "2:" + base64.RawURLEncoding.EncodeToString(testKey(2))
	old := mustKeyring(t, k1)
	plain := []byte("sealed under the first master key")
	st, stored := seal(t, old, plain, 0)
	if st.KeyID != "1" {
		t.Fatalf("key id %q", st.KeyID)
	}
	both := mustKeyring(t, "# rotated\n"+k1+"\n"+k2+"\n")
	if both.Active() != "2" || strings.Join(both.IDs(), ",") != "1,2" {
		t.Fatalf("active %q ids %v", both.Active(), both.IDs())
	}
	got, err := readRange(both, []depot.Stream{st}, stored, 0, st.Size)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("%q %v", got, err)
	}
	st2, _ := seal(t, both, plain, 0)
	if st2.KeyID != "2" {
		t.Fatalf("new stream under key %q", st2.KeyID)
	}
	only2 := mustKeyring(t, k2)
	if _, err := readRange(only2, []depot.Stream{st}, stored, 0, st.Size); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("without key 1: %v", err)
	}
	// A sealed key moved to another key id does not open.
	other := mustKeyring(t, "1:"+hex.EncodeToString(testKey(9)))
	if _, err := readRange(other, []depot.Stream{st}, stored, 0, st.Size); !errors.Is(err, depot.ErrCorrupt) {
		t.Fatalf("under another key 1: %v", err)
	}
}

func TestParseKeyring(t *testing.T) {
	hexKey := hex.EncodeToString(testKey(3))
	for _, tc := range []struct {
		text   string
		active string
		ok     bool
	}{
		{hexKey, "1", true},
		{base64.StdEncoding.EncodeToString(testKey(3)), "1", true},
		{hexKey + "," + base64.RawStdEncoding.EncodeToString(testKey(4)), "2", true},
		{"old:" + hexKey + "\nnew:" + base64.URLEncoding.EncodeToString(testKey(4)), "new", true},
		{"", "", false},
		{"a:" + hexKey + ",a:" + hexKey, "", false},
		{"bad id:" + hexKey, "", false},
		{"1:" + hexKey[:60], "", false},
		{"1:" + base64.StdEncoding.EncodeToString(testKey(3)[:16]), "", false},
	} {
		k, err := ParseKeyring(tc.text)
		if (err == nil) != tc.ok {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if err != nil && !errors.Is(err, ErrBadKey) {
			t.Fatalf("%q: %v does not wrap ErrBadKey", tc.text, err)
		}
		if tc.ok && k.Active() != tc.active {
			t.Fatalf("%q: active %q", tc.text, k.Active())
		}
	}
}

func TestLoadOrCreateKeyringFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sse.keys")
	k1, err := LoadOrCreateKeyringFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi.Mode(), err)
	}
	st, stored := seal(t, k1, []byte("x"), 0)
	k2, err := LoadOrCreateKeyringFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readRange(k2, []depot.Stream{st}, stored, 0, 1); err != nil || string(got) != "x" {
		t.Fatalf("reloaded keyring: %q %v", got, err)
	}
}

func TestCustomerKey(t *testing.T) {
	c1, err := NewCustomerKey(testKey(5))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := NewCustomerKey(testKey(6))
	if _, err := NewCustomerKey(testKey(5)[:31]); !errors.Is(err, ErrBadKey) {
		t.Fatal(err)
	}
	check, err := c1.KeyCheck()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c1.KeyCheck()
	if check == again {
		t.Fatal("key checks are not salted")
	}
	if !c1.Matches(check) || !c1.Matches(again) || c2.Matches(check) || c1.Matches("v1:garbage") || c1.Matches("") {
		t.Fatal("Matches")
	}
	if strings.Contains(check, base64.RawURLEncoding.EncodeToString(testKey(5))) {
		t.Fatal("key check holds the key")
	}
	plain := bytes.Repeat([]byte("customer"), 10000)
	st, stored := seal(t, c1, plain, 0)
	if st.KeyID != "" {
		t.Fatalf("SSE-C stream names key %q", st.KeyID)
	}
	if got, err := readRange(c1, []depot.Stream{st}, stored, 5, 70000); err != nil || !bytes.Equal(got, plain[5:70005]) {
		t.Fatalf("%v", err)
	}
	if _, err := readRange(c2, []depot.Stream{st}, stored, 0, 1); !errors.Is(err, depot.ErrCorrupt) {
		t.Fatalf("wrong customer key: %v", err)
	}
	kr := mustKeyring(t, hex.EncodeToString(testKey(5)))
	if _, err := readRange(kr, []depot.Stream{st}, stored, 0, 1); err == nil {
		t.Fatal("SSE-C stream opened by a master key")
	}
}

func TestEncrypter_ShortBody(t *testing.T) {
	kr := mustKeyring(t, hex.EncodeToString(testKey(1)))
	e, err := NewEncrypter(kr, strings.NewReader("short"), 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(e); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
}

func BenchmarkEncrypt(b *testing.B) {
	kr := mustKeyring(b, hex.EncodeToString(testKey(1)))
	plain := make([]byte, 4<<20)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		e, _ := NewEncrypter(kr, bytes.NewReader(plain), int64(len(plain)), 0)
		io.Copy(io.Discard, e)
	}
}

var update = flag.Bool("update", false, "rewrite testdata fixtures")

// fixture is a stream of format v1 kept in testdata: it must always read.
type fixture struct {
	Keyring     string         `json:"keyring"`
	CustomerKey []byte         `json:"customer_key"`
	KeyCheck    string         `json:"key_check"`
	Streams     []depot.Stream `json:"streams"` // the first under the keyring, the second under the customer key
	Stored      [][]byte       `json:"stored"`
	Plain       string         `json:"plain"`
}

// TestStream_Fixture reads streams written by the first version of the
// format (go test -update writes a new fixture).
func TestStream_Fixture(t *testing.T) {
	path := filepath.Join("testdata", "v1-streams.json")
	if *update {
		f := fixture{Keyring: "old:" + hex.EncodeToString(testKey(1)) + "\nnew:" + base64.StdEncoding.EncodeToString(testKey(2)),
			CustomerKey: testKey(3), Plain: strings.Repeat("depot keeps product photos. ", 12)}
		kr := mustKeyring(t, f.Keyring)
		ck, _ := NewCustomerKey(f.CustomerKey)
		f.KeyCheck, _ = ck.KeyCheck()
		for _, kek := range []KEK{kr, ck} {
			st, stored := seal(t, kek, []byte(f.Plain), 100)
			f.Streams, f.Stored = append(f.Streams, st), append(f.Stored, stored)
		}
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	kr := mustKeyring(t, f.Keyring)
	ck, err := NewCustomerKey(f.CustomerKey)
	if err != nil || !ck.Matches(f.KeyCheck) {
		t.Fatalf("key check: %v", err)
	}
	for i, kek := range []KEK{kr, ck} {
		got, err := readRange(kek, f.Streams[i:i+1], f.Stored[i], 0, f.Streams[i].Size)
		if err != nil || string(got) != f.Plain {
			t.Fatalf("stream %d: %q, %v", i, got, err)
		}
		got, err = readRange(kek, f.Streams[i:i+1], f.Stored[i], 95, 10)
		if err != nil || string(got) != f.Plain[95:105] {
			t.Fatalf("stream %d range: %q, %v", i, got, err)
		}
	}
}
