package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// The history: every operation of the run with its interval (time since
// the run began, on the monotonic clock) and its outcome.

type outcome int

const (
	outOK      outcome = iota // the answer said it happened
	outFailed                 // a definite refusal (4xx): it did not happen
	outUnknown                // timeout, lost connection, 5xx: it may have happened
)

func (o outcome) String() string { return [...]string{"ok", "failed", "unknown"}[o] }

type opKind string

const (
	opPut      opKind = "put"       // PutObject, one request
	opPutRetry opKind = "put-retry" // the same PutObject sent twice
	opPutMid   opKind = "put-cut"   // a PutObject whose client gives up mid-body
	opPutLate  opKind = "put-late"  // ... or right after the body, during the commit
	opMulti    opKind = "multipart" // Create, UploadPart..., Complete
	opDelete   opKind = "delete"
	opCopy     opKind = "copy"
	opGet      opKind = "get"
	opRange    opKind = "get-range"
	opList     opKind = "list"
	opFinal    opKind = "final-get" // the read-back after the nemesis stopped
	// opRestore is the nemesis's restore of the nameserver from a
	// backup taken during [bstart, bend]: a write of every key (checker.go).
	opRestore opKind = "restore"
)

func (k opKind) isWrite() bool {
	switch k {
	case opPut, opPutRetry, opPutMid, opPutLate, opMulti, opDelete, opCopy:
		return true
	}
	return false
}

// op is one operation.
type op struct {
	seq        int
	client     int
	gateway    string
	kind       opKind
	key        string
	start, end time.Duration
	out        outcome
	err        string

	// Writes: the write id and its body (puts), or the source (copies).
	wid  uint64
	size int64
	sum  [32]byte
	src  string

	// Reads: the range asked (n < 0: whole), and what came back.
	off, n    int64
	absent    bool  // NoSuchKey
	gotLen    int64 // whole reads: length and SHA-256
	gotSum    [32]byte
	gotHead   []byte // the first bytes, for messages
	gotBytes  []byte // ranged reads: the bytes
	badRange  bool   // 416: the range starts past the object's end
	listed    map[string]int64
	listFirst string // lists: the prefix listed

	// Restores: when the backup restored was taken (the GET /backup
	// request's interval).
	bstart, bend time.Duration
}

func (o *op) String() string {
	s := fmt.Sprintf("op#%d %s %q by client %d via %s [%v..%v] %s", o.seq, o.kind, o.key, o.client, o.gateway,
		o.start.Round(time.Millisecond), o.end.Round(time.Millisecond), o.out)
	if o.kind.isWrite() && o.kind != opDelete && o.kind != opCopy {
		s += fmt.Sprintf(" write %016x (%d bytes)", o.wid, o.size)
	}
	if o.kind == opCopy {
		s += " from " + o.src
	}
	if o.kind == opRestore {
		s += fmt.Sprintf(" of the backup taken during [%v..%v]", o.bstart.Round(time.Millisecond), o.bend.Round(time.Millisecond))
	}
	if o.err != "" {
		s += ": " + o.err
	}
	return s
}

// history collects the operations of all clients.
type history struct {
	t0  time.Time
	mu  sync.Mutex
	ops []*op
}

func (h *history) now() time.Duration { return time.Since(h.t0) }

// begin records the start of an operation.
func (h *history) begin(o *op) *op {
	h.mu.Lock()
	o.seq = len(h.ops)
	h.ops = append(h.ops, o)
	h.mu.Unlock()
	o.start = h.now()
	return o
}

// finish records its end and its outcome from err.
func (h *history) finish(o *op, err error) {
	o.end = h.now()
	o.out, o.err = classify(err)
	if o.out != outOK && isNoSuchKey(err) {
		o.absent = true
	}
}

func (h *history) all() []*op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*op, len(h.ops))
	copy(out, h.ops)
	return out
}

// classify maps an error to an outcome: nil is ok; an S3 error answer
// with a 4xx status (but 408 and 429) is a definite refusal; anything
// else (a 5xx, a timeout, a cut connection, a cancelled context) leaves
// the outcome unknown.
func classify(err error) (outcome, string) {
	if err == nil {
		return outOK, ""
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return outUnknown, msg
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return outUnknown, msg
	}
	r := minio.ToErrorResponse(err)
	if r.StatusCode >= 400 && r.StatusCode < 500 && r.StatusCode != 408 && r.StatusCode != 429 {
		return outFailed, fmt.Sprintf("%d %s: %s", r.StatusCode, r.Code, r.Message)
	}
	if r.StatusCode != 0 {
		msg = fmt.Sprintf("%d %s: %s", r.StatusCode, r.Code, r.Message)
	}
	return outUnknown, msg
}

func isNoSuchKey(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || (r.StatusCode == 404 && !strings.Contains(r.Code, "Bucket") && r.Code != "NoSuchUpload")
}

// forever stands for the end of an operation whose outcome is unknown:
// it may take effect at any time after it began.
const forever = time.Duration(math.MaxInt64)

func (o *op) effectiveEnd() time.Duration {
	if o.out == outUnknown {
		return forever
	}
	return o.end
}

func sortByStart(ops []*op) {
	sort.Slice(ops, func(i, j int) bool { return ops[i].start < ops[j].start })
}
