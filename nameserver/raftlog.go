package nameserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// RaftLogFile is the name of the raft log and stable store in Config.Dir.
const RaftLogFile = "raft.db"

// logStore is raft's log store and stable store on bbolt (format in
// doc.go). It takes the place of raft-boltdb, whose v2 no longer builds
// against the go-metrics that memberlist and raft require.
type logStore struct {
	db *bbolt.DB
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)

	bktRaftLogs   = []byte("logs")
	bktRaftStable = []byte("stable")
)

func openLogStore(path string) (*logStore, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("nameserver: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bktRaftLogs, bktRaftStable} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("nameserver: open %s: %w", path, err)
	}
	return &logStore{db: db}, nil
}

func (l *logStore) close() error { return l.db.Close() }

// FirstIndex implements raft.LogStore.
func (l *logStore) FirstIndex() (uint64, error) {
	var idx uint64
	err := l.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bktRaftLogs).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// LastIndex implements raft.LogStore.
func (l *logStore) LastIndex() (uint64, error) {
	var idx uint64
	err := l.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bktRaftLogs).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// GetLog implements raft.LogStore.
func (l *logStore) GetLog(index uint64, log *raft.Log) error {
	return l.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bktRaftLogs).Get(u64(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeLog(index, v, log)
	})
}

// StoreLog implements raft.LogStore.
func (l *logStore) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: all logs in one transaction, one
// fsync.
func (l *logStore) StoreLogs(logs []*raft.Log) error {
	return l.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktRaftLogs)
		for _, log := range logs {
			if err := b.Put(u64(log.Index), encodeLog(log)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRange implements raft.LogStore.
func (l *logStore) DeleteRange(lo, hi uint64) error {
	return l.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bktRaftLogs).Cursor()
		for k, _ := c.Seek(u64(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Set implements raft.StableStore.
func (l *logStore) Set(key, val []byte) error {
	return l.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bktRaftStable).Put(key, val) })
}

// Get implements raft.StableStore. A missing key is an empty value, as
// raft expects.
func (l *logStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := l.db.View(func(tx *bbolt.Tx) error {
		out = append([]byte{}, tx.Bucket(bktRaftStable).Get(key)...)
		return nil
	})
	return out, err
}

// SetUint64 implements raft.StableStore.
func (l *logStore) SetUint64(key []byte, val uint64) error { return l.Set(key, u64(val)) }

// GetUint64 implements raft.StableStore.
func (l *logStore) GetUint64(key []byte) (uint64, error) {
	v, err := l.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("nameserver: raft stable key %q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// encodeLog writes a log entry as doc.go describes: term, type, appended
// time, extensions, data.
func encodeLog(log *raft.Log) []byte {
	b := make([]byte, 0, 8+1+8+binary.MaxVarintLen64+len(log.Extensions)+len(log.Data))
	b = binary.BigEndian.AppendUint64(b, log.Term)
	b = append(b, byte(log.Type))
	var at int64
	if !log.AppendedAt.IsZero() {
		at = log.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(log.Extensions)))
	b = append(b, log.Extensions...)
	return append(b, log.Data...)
}

var errBadLog = errors.New("nameserver: malformed raft log entry")

func decodeLog(index uint64, v []byte, log *raft.Log) error {
	if len(v) < 17 {
		return errBadLog
	}
	*log = raft.Log{Index: index, Term: binary.BigEndian.Uint64(v), Type: raft.LogType(v[8])}
	if at := int64(binary.BigEndian.Uint64(v[9:])); at != 0 {
		log.AppendedAt = time.Unix(0, at)
	}
	n, w := binary.Uvarint(v[17:])
	if w <= 0 || uint64(len(v)-17-w) < n {
		return errBadLog
	}
	rest := v[17+w:]
	if n > 0 {
		log.Extensions = append([]byte{}, rest[:n]...)
	}
	log.Data = append([]byte{}, rest[n:]...)
	return nil
}
