package nameserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"depot/nameserver/nsclient"
)

// Request ids: a client that lost the answer to a change (a broken
// connection, a timeout, a leader that lost office) repeats it under the
// same request id, and apply answers the repeat with the result it
// recorded the first time instead of applying it again. So every command
// is idempotent under replay, whatever it does; see doc.go, "Request ids".

var (
	// bktRequests: request id, 0x00, command type → JSON requestRecord.
	// Created by the first command that carries an id.
	bktRequests = []byte("requests")
	// bktRequestTimes: int64 Unix nanoseconds of the command's Time,
	// request id, 0x00, command type → empty: the records in time order,
	// for pruning.
	bktRequestTimes = []byte("request_times")
)

// RequestRetention is how long apply remembers the result of a command
// that carried a request id, counted in commands' Time. A repeat that
// comes later is applied again. It is far longer than any client retries
// (nsclient's RetryFor is 15s); it is a constant, not a setting, because
// every replica must prune alike.
const RequestRetention = time.Hour

// prunePerCommand bounds the expired records one command removes: pruning
// stays cheap, and since every recorded command prunes, the records never
// outgrow what was recorded within RequestRetention.
const prunePerCommand = 16

// requestRecord is a recorded result.
type requestRecord struct {
	Time   time.Time       `json:"time"`
	Result json.RawMessage `json:"result"` // JSON null for a nil result
}

// resultTypes decodes the recorded result of each command type whose
// result is not nil into the very Go type apply returns for it (see
// Command), so that callers' type assertions hold for a repeat too.
var resultTypes = map[CommandType]func([]byte) (any, error){
	CmdAssign:         decodeResult[nsclient.Assignment],
	CmdPutObject:      decodeResult[nsclient.PutResult],
	CmdDeleteObject:   decodeResult[nsclient.DeleteResult],
	CmdCreateBucket:   decodeResult[nsclient.Bucket],
	CmdSetBucket:      decodeResult[nsclient.Bucket],
	CmdCreateUpload:   decodeResult[nsclient.Upload],
	CmdPutPart:        decodeResult[nsclient.PutResult],
	CmdCompleteUpload: decodeResult[nsclient.PutResult],
	CmdSweepOrphans:   decodeResult[nsclient.SweepResult],
}

func decodeResult[T any](raw []byte) (any, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

// requestKey is the key of cmd's record: its id, 0x00 and its type. The
// type is part of it because one call may propose commands of several
// types (an assign first syncs the gossip view).
func requestKey(cmd Command) []byte {
	k := make([]byte, 0, len(cmd.ID)+1+len(cmd.Type))
	k = append(k, cmd.ID...)
	k = append(k, 0)
	return append(k, cmd.Type...)
}

// applyOnce applies cmd, which carries a request id, at most once: a
// command whose id and type were recorded returns the recorded result and
// writes nothing; otherwise it is applied and, when it succeeded, its
// result recorded in the same transaction. A refused command records
// nothing, so a repeat is judged afresh.
func (s *store) applyOnce(tx *bbolt.Tx, cmd Command) (any, error) {
	key := requestKey(cmd)
	if b := tx.Bucket(bktRequests); b != nil {
		if raw := b.Get(key); raw != nil {
			s.metrics.repeats.Inc()
			return recalled(cmd, raw)
		}
	}
	res, err := s.applyCommand(tx, cmd)
	if err != nil {
		return nil, err
	}
	if err := remember(tx, cmd, key, res); err != nil {
		return nil, err
	}
	return res, nil
}

// recalled decodes a recorded result.
func recalled(cmd Command, raw []byte) (any, error) {
	var rec requestRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, &storageError{fmt.Errorf("request %q: record: %w", cmd.ID, err)}
	}
	if len(rec.Result) == 0 || bytes.Equal(rec.Result, []byte("null")) {
		return nil, nil
	}
	dec, ok := resultTypes[cmd.Type]
	if !ok {
		return nil, &storageError{fmt.Errorf("request %q: no result type for %s", cmd.ID, cmd.Type)}
	}
	res, err := dec(rec.Result)
	if err != nil {
		return nil, &storageError{fmt.Errorf("request %q: result: %w", cmd.ID, err)}
	}
	return res, nil
}

// remember records res as the result of cmd and prunes expired records.
// A result whose type resultTypes does not know is a storage error: the
// transaction is discarded rather than a repeat answered with nothing.
func remember(tx *bbolt.Tx, cmd Command, key []byte, res any) error {
	if _, ok := resultTypes[cmd.Type]; res != nil && !ok {
		return &storageError{fmt.Errorf("command %s: result %T cannot be recorded", cmd.Type, res)}
	}
	out, err := json.Marshal(res)
	if err != nil {
		return &storageError{err}
	}
	b, err := tx.CreateBucketIfNotExists(bktRequests)
	if err != nil {
		return &storageError{err}
	}
	ix, err := tx.CreateBucketIfNotExists(bktRequestTimes)
	if err != nil {
		return &storageError{err}
	}
	if err := pruneRequests(b, ix, cmd.Time); err != nil {
		return err
	}
	if err := putJSON(b, key, requestRecord{Time: cmd.Time, Result: out}); err != nil {
		return err
	}
	return put(ix, append(timeKey(cmd.Time), key...), nil)
}

func timeKey(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

// pruneRequests removes up to prunePerCommand records older than
// RequestRetention before now (a command's Time), oldest first.
func pruneRequests(b, ix *bbolt.Bucket, now time.Time) error {
	cutoff := timeKey(now.Add(-RequestRetention))
	var old [][]byte
	cur := ix.Cursor()
	for k, _ := cur.First(); k != nil && len(old) < prunePerCommand; k, _ = cur.Next() {
		if len(k) < 8 || bytes.Compare(k[:8], cutoff) >= 0 {
			break
		}
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := del(b, k[8:]); err != nil {
			return err
		}
		if err := del(ix, k); err != nil {
			return err
		}
	}
	return nil
}
