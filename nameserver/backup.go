package nameserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// backupMagic opens every backup that Backup writes: 7 bytes of name and
// the header's version (see doc.go, "Backup and restore").
var backupMagic = [8]byte{'D', 'E', 'P', 'O', 'T', 'B', 'K', 1}

// backupHeaderSize is the size of the header: the magic and the backup
// time.
const backupHeaderSize = 16

// Backup writes a consistent copy of the database to w while the
// nameserver goes on serving, and returns its size: a 16-byte header (the
// magic and the time of the read transaction the copy is of, int64 Unix
// nanoseconds, big-endian) followed by the bbolt file.
func (s *Server) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		hdr := binary.BigEndian.AppendUint64(backupMagic[:], uint64(time.Now().UnixNano()))
		m, err := w.Write(hdr)
		n += int64(m)
		if err != nil {
			return err
		}
		m64, err := tx.WriteTo(w)
		n += m64
		return err
	})
	if err != nil {
		return n, fmt.Errorf("nameserver: backup: %w", err)
	}
	return n, nil
}

// readBackupHeader reads the header of a backup from r and returns its
// time and the bbolt file that follows. A backup from before the header
// (a bare bbolt file) has no time: the zero time, and the whole of r.
func readBackupHeader(r io.Reader) (time.Time, io.Reader, error) {
	var hdr [backupHeaderSize]byte
	n, err := io.ReadFull(r, hdr[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return time.Time{}, nil, err
	}
	if n == backupHeaderSize && [8]byte(hdr[:8]) == backupMagic {
		return time.Unix(0, int64(binary.BigEndian.Uint64(hdr[8:]))).UTC(), r, nil
	}
	return time.Time{}, io.MultiReader(bytes.NewReader(hdr[:n]), r), nil
}

// Restore rewinds the namespace to a backup read from r (Backup's format,
// or a bare bbolt file from before it had a header) and keeps the
// placement of now (mergePlacement; doc.go, "Backup and restore"). Alone,
// the database's content is replaced in one transaction; in a raft group
// the leader takes the merged file as a snapshot that every member
// installs (raft.Restore). What was written since the backup is gone from
// the namespace; segments deleted or overwritten since the backup was
// taken lose their bytes once DeleteGrace passed, which the result tells
// (whole false, and a warning).
//
// The backup's id counters are old: the volumes and needle ids leased
// since it was taken live on the dataservers. Before installing it,
// Restore lifts them (liftCounters) above the highest ids that this
// database, the backup and every dataserver gossip shows up report, plus
// a margin for what none of them can know (leases in clients' hands,
// dataservers that are down), so that no id is ever handed out twice.
//
// While it merges and installs, Restore holds the store's fence: no
// command is proposed here, and every one proposed before has been
// applied, so no change of placement falls between the merge and the
// install.
func (s *Server) Restore(ctx context.Context, r io.Reader) (nsclient.RestoreResult, error) {
	var res nsclient.RestoreResult
	bt, body, err := readBackupHeader(r)
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.Dir, "backup-*.db")
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	hw, err := s.highWater(ctx)
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	// Versions under Object Lock that the restore would take out,
	// counted before the fence: the scan reads the whole namespace, and
	// no write should wait for it.
	locked, err := lockedNotIn(s.store.db, tmp.Name(), time.Now())
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	s.store.fence.Lock()
	defer s.store.fence.Unlock()
	now := time.Now()
	restored, err := prepareBackup(tmp.Name(), hw, s.store.db, bt, s.log)
	if err != nil {
		return res, err
	}
	res = restoreResult(bt, now, s.cfg.DeleteGrace, restored)
	if locked > 0 {
		w := fmt.Sprintf("%d object version(s) under Object Lock are not in the backup: the restore takes them out of the namespace, and their data is reclaimed as orphans", locked)
		if res.Warning != "" {
			w = res.Warning + "; " + w
		}
		res.Warning, res.LockedRewound = w, locked
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return res, fmt.Errorf("nameserver: restore: %w", err)
	}
	defer f.Close()
	if s.raft == nil {
		if err := s.store.restoreFrom(f, s.cfg.Dir); err != nil {
			return res, err
		}
	} else {
		st, err := f.Stat()
		if err != nil {
			return res, fmt.Errorf("nameserver: restore: %w", err)
		}
		meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: st.Size()}
		if err := s.raft.r.Restore(meta, f, timeoutOf(ctx)); err != nil {
			return res, raftError(err)
		}
	}
	s.log.Info("restored from a backup", "backup_time", bt, "age", res.Age, "delete_grace", res.DeleteGrace,
		"whole", res.Whole, "restored", restored)
	if res.Warning != "" {
		s.log.Warn("restore: " + res.Warning)
	}
	return res, nil
}

// lockedNotIn counts the object versions of cur that Object Lock protects
// at now and that the database at path (a backup being restored) does not
// hold: what a restore would rewind despite their lock.
func lockedNotIn(cur *bbolt.DB, path string, now time.Time) (int, error) {
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer bdb.Close()
	n := 0
	err = cur.View(func(tx *bbolt.Tx) error {
		return bdb.View(func(btx *bbolt.Tx) error {
			check := func(bucket string, raw []byte) error {
				if !bytes.Contains(raw, []byte(`"lock":`)) {
					return nil
				}
				var o depot.Object
				if err := json.Unmarshal(raw, &o); err != nil || !o.Lock.Protects(now, false) {
					return nil
				}
				has, err := holdsVersion(btx, bucket, o.Key, o.VersionID)
				if err == nil && !has {
					n++
				}
				return err
			}
			for _, top := range [][]byte{bktObjects, bktVersions} {
				tb := tx.Bucket(top)
				if tb == nil {
					continue
				}
				err := tb.ForEachBucket(func(name []byte) error {
					return tb.Bucket(name).ForEach(func(_, v []byte) error { return check(string(name), v) })
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	return n, err
}

// holdsVersion reports whether tx holds version vid of bucket/key, as
// its current version or another.
func holdsVersion(tx *bbolt.Tx, bucket, key, vid string) (bool, error) {
	if ob := tx.Bucket(bktObjects); ob != nil {
		if b := ob.Bucket([]byte(bucket)); b != nil {
			if cur, err := currentObject(b, bucket, key); err != nil {
				return false, err
			} else if cur != nil && cur.VersionID == vid {
				return true, nil
			}
		}
	}
	vb, err := versionsOf(tx, bucket, false)
	if err != nil || vb == nil {
		return false, err
	}
	found := false
	err = keyVersions(vb, key, func(_ []byte, o depot.Object) (bool, error) {
		found = o.VersionID == vid
		return !found, nil
	})
	return found, err
}

// restoreResult describes a restore of a backup taken at bt, done at now.
func restoreResult(bt, now time.Time, grace time.Duration, restored uint64) nsclient.RestoreResult {
	res := nsclient.RestoreResult{BackupTime: bt, DeleteGrace: grace, Restored: restored}
	switch {
	case bt.IsZero():
		res.Warning = "the backup records no time (taken before backups had a header): " +
			"objects deleted or overwritten since it was taken may have lost their data"
	default:
		res.Age = max(0, now.Sub(bt))
		res.Whole = res.Age < grace
		if !res.Whole {
			res.Warning = fmt.Sprintf("the backup is %v old, older than the delete grace (%v): "+
				"objects deleted or overwritten since it was taken may have lost their data",
				res.Age.Round(time.Second), grace)
		}
	}
	return res
}

// Meta keys a restore writes.
var (
	// keyRestored counts the restores this database went through
	// (uint64); the repair workers' orphan sweep forgets what it decided
	// when it changes.
	keyRestored = []byte("restored")
	// keyBackupTime is the time of the backup last restored (int64 Unix
	// nanoseconds; absent for a backup without header).
	keyBackupTime = []byte("backup_time")
)

// prepareBackup readies the staged backup at path for installing: it must
// be a database of this format; its raft index, which belongs to the log
// it came from, is dropped (the entries after the restore are applied
// here); the placement of cur, the running database, is merged in
// (mergePlacement); its id counters are lifted above hw; and meta records
// the restore (restored, backup_time). It returns the new restore count.
func prepareBackup(path string, hw highWater, cur *bbolt.DB, bt time.Time, log *slog.Logger) (uint64, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("%w: restore: not a database: %v", depot.ErrBadRequest, err)
	}
	var restored uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if meta == nil || string(meta.Get(keyVersion)) != formatVersion {
			return fmt.Errorf("%w: not a nameserver database of format %s", depot.ErrBadRequest, formatVersion)
		}
		if err := meta.Delete(keyRaftIndex); err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		err := cur.View(func(ctx *bbolt.Tx) error {
			restored = max(getU64(meta, keyRestored), getU64(ctx.Bucket(bktMeta), keyRestored)) + 1
			return mergePlacement(tx, ctx, log)
		})
		if err != nil {
			return err
		}
		if err := meta.Put(keyRestored, u64(restored)); err != nil {
			return err
		}
		if err := meta.Delete(keyBackupTime); err != nil {
			return err
		}
		if !bt.IsZero() {
			if err := meta.Put(keyBackupTime, u64(uint64(bt.UnixNano()))); err != nil {
				return err
			}
		}
		return liftCounters(tx, hw, log)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("nameserver: restore: %w", err)
	}
	return restored, nil
}

// mergePlacement gives the staged backup tx the placement of the running
// database cur, so that a restore rewinds the namespace but not where the
// shards are (doc.go, "Backup and restore", has the bucket by bucket
// decision):
//
//   - volumes: cur's record of every volume it knows; the backup's record
//     of a volume cur lacks (a wiped database). The sequence is the
//     higher of the two (liftCounters lifts it further).
//   - nodevols: rebuilt from the merged volume records.
//   - needles: per volume, the higher counter.
//   - repairs, retired: cur's entries; the backup's only for volumes whose
//     record came from the backup.
//   - rebalance: cur's state when it has one.
//   - dataservers, missed: the union, cur's entry where both have one.
//   - nameservers: cur's members when it has any.
//   - deletes: the backup's entries, with the higher sequence.
func mergePlacement(tx, cur *bbolt.Tx, log *slog.Logger) error {
	ensure := func(name []byte) (*bbolt.Bucket, error) { return tx.CreateBucketIfNotExists(name) }
	// union copies cur's entries of name over tx's.
	union := func(name []byte) error {
		src := cur.Bucket(name)
		if src == nil {
			return nil
		}
		dst, err := ensure(name)
		if err != nil {
			return err
		}
		return src.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil
			}
			return dst.Put(bytes.Clone(k), bytes.Clone(v))
		})
	}
	// replace drops tx's entries of name but those keep (nil: none)
	// holds to, and copies cur's in. With keep nil, an empty or missing
	// bucket in cur leaves tx's as it is.
	replace := func(name []byte, keep func(k []byte) bool) error {
		src := cur.Bucket(name)
		if keep == nil && (src == nil || firstKey(src) == nil) {
			return nil
		}
		dst, err := ensure(name)
		if err != nil {
			return err
		}
		var drop [][]byte
		err = dst.ForEach(func(k, _ []byte) error {
			if keep == nil || !keep(k) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := dst.Delete(k); err != nil {
				return err
			}
		}
		return union(name)
	}

	bv, err := ensure(bktVolumes)
	if err != nil {
		return err
	}
	fromNow := make(map[uint32]bool)
	if cv := cur.Bucket(bktVolumes); cv != nil {
		err := cv.ForEach(func(k, v []byte) error {
			if len(k) == 4 && v != nil {
				fromNow[binary.BigEndian.Uint32(k)] = true
				return bv.Put(bytes.Clone(k), bytes.Clone(v))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := bv.SetSequence(max(bv.Sequence(), cv.Sequence())); err != nil {
			return err
		}
	}
	fromBackup := 0
	// nodevols, from the merged records.
	if err := tx.DeleteBucket(bktNodeVols); err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
		return err
	}
	ix, err := tx.CreateBucket(bktNodeVols)
	if err != nil {
		return err
	}
	err = bv.ForEach(func(k, v []byte) error {
		if len(k) != 4 || v == nil {
			return nil
		}
		if !fromNow[binary.BigEndian.Uint32(k)] {
			fromBackup++
		}
		var rec volumeRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("volume %d: %w", binary.BigEndian.Uint32(k), err)
		}
		for _, m := range rec.Members {
			if m.Node != "" {
				if err := ix.Put(nodeVolKey(m.Node, rec.ID), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// needles: the higher counter.
	if cn := cur.Bucket(bktNeedles); cn != nil {
		bn, err := ensure(bktNeedles)
		if err != nil {
			return err
		}
		err = cn.ForEach(func(k, v []byte) error {
			if len(k) != 4 || len(v) != 8 {
				return nil
			}
			if getU64(bn, k) >= binary.BigEndian.Uint64(v) {
				return nil
			}
			return bn.Put(bytes.Clone(k), bytes.Clone(v))
		})
		if err != nil {
			return err
		}
	}
	// deletes: the backup's queue, numbered on from the higher sequence,
	// so that no sequence number names two entries (the delete loop acks
	// entries by it, and a pass may have begun before the restore).
	if cd := cur.Bucket(bktDeletes); cd != nil {
		bd, err := ensure(bktDeletes)
		if err != nil {
			return err
		}
		if err := bd.SetSequence(max(bd.Sequence(), cd.Sequence())); err != nil {
			return err
		}
	}
	backupsVolume := func(k []byte) bool { return len(k) >= 4 && !fromNow[binary.BigEndian.Uint32(k)] }
	for _, name := range [][]byte{bktRepairs, bktRetired} {
		if err := replace(name, backupsVolume); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bktRebalance, bktNameservers} {
		if err := replace(name, nil); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bktDataservers, bktMissed} {
		if err := union(name); err != nil {
			return err
		}
	}
	log.Info("restore: placement of now kept", "volumes_now", len(fromNow), "volumes_from_backup", fromBackup)
	return nil
}

func firstKey(b *bbolt.Bucket) []byte {
	k, _ := b.Cursor().First()
	return k
}

// Margins a restore adds above the highest ids it could learn of. The
// needle margin exceeds any number of ids that clients can hold in
// leases (MaxLease each) or that dataservers down during the restore can
// have written; the volume margin, any number of volumes created since
// the backup whose members were all down. Needle ids are 64 bits, so the
// needle margin allows millions of restores; volume ids 32, 65535.
const (
	restoreNeedleMargin = 1 << 32
	restoreVolumeMargin = 1 << 16
)

// highWater is what a restore knows of the ids handed out: the highest
// volume id, and per volume the next needle id above those seen.
type highWater struct {
	volume  uint64
	needles map[depot.VolumeID]uint64
}

func (h *highWater) needle(vol depot.VolumeID, next uint64) {
	h.needles[vol] = max(h.needles[vol], next)
}

// highWater gathers the ids in use from this nameserver's database (the
// same cluster's, unless wiped) and from the shard files of every
// dataserver gossip shows up. A dataserver that does not answer is
// logged and left to the margins.
func (s *Server) highWater(ctx context.Context) (highWater, error) {
	hw := highWater{needles: make(map[depot.VolumeID]uint64)}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		hw.volume = tx.Bucket(bktVolumes).Sequence()
		return tx.Bucket(bktNeedles).ForEach(func(k, v []byte) error {
			if len(k) == 4 && len(v) == 8 {
				hw.needle(depot.VolumeID(binary.BigEndian.Uint32(k)), binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		return hw, err
	}
	hc := s.httpClient(30 * time.Second)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range s.gossipView() {
		if !up(d.State) {
			continue
		}
		wg.Go(func() {
			files, err := s.shardFiles(ctx, hc, d.Addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("restore: no high-water marks from a dataserver; the margins cover it", "node", d.ID, "err", err)
				return
			}
			for _, f := range files {
				hw.volume = max(hw.volume, uint64(f.Volume))
				hw.needle(f.Volume, uint64(f.MaxNeedle)+1)
			}
		})
	}
	wg.Wait()
	return hw, ctx.Err()
}

// liftCounters sets the volume id sequence and every volume's needle
// counter of tx (a backup being restored) above hw and its own values,
// by the restore margins.
func liftCounters(tx *bbolt.Tx, hw highWater, log *slog.Logger) error {
	vb, nb := tx.Bucket(bktVolumes), tx.Bucket(bktNeedles)
	seq := max(vb.Sequence(), hw.volume) + restoreVolumeMargin
	if seq > 1<<32-1 {
		return fmt.Errorf("volume ids exhausted: a restore needs %d", seq)
	}
	if err := vb.SetSequence(seq); err != nil {
		return err
	}
	var vols []depot.VolumeID
	err := vb.ForEach(func(k, _ []byte) error {
		if len(k) == 4 {
			vols = append(vols, depot.VolumeID(binary.BigEndian.Uint32(k)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range vols {
		next := max(getU64(nb, u32(uint32(id))), hw.needles[id], 1)
		lifted := next + restoreNeedleMargin
		if lifted < next {
			lifted = math.MaxUint64 // exhausted: assign refuses the volume
		}
		if err := nb.Put(u32(uint32(id)), u64(lifted)); err != nil {
			return err
		}
	}
	log.Info("restore: id counters lifted", "volume_sequence", seq, "volumes", len(vols))
	return nil
}

func (s *Server) routeRaft(mux *http.ServeMux) {
	s.route(mux, "GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := s.Backup(r.Context(), w); err != nil {
			s.log.Warn("backup", "err", err)
		}
	})
	s.route(mux, "POST /restore", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Restore(r.Context(), r.Body)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, res)
	})
	s.route(mux, "GET /nameservers", func(w http.ResponseWriter, r *http.Request) {
		l, err := s.Nameservers(r.Context())
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, nsclient.NameserverList{Nameservers: l})
	})
	s.route(mux, "POST /nameservers", func(w http.ResponseWriter, r *http.Request) {
		var req nsclient.NameserverInfo
		if err := readJSON(w, r, maxSmallBody, &req); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := s.AddNameserver(r.Context(), req.ID, req.RaftAddr); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s.route(mux, "DELETE /nameservers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RemoveNameserver(r.Context(), r.PathValue("id")); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// Digest returns a SHA-256 of the replicated state: every key and value of
// every bucket but the raft index, in order, and every bucket's sequence.
// Members of a raft group that applied the same entries have the same
// digest; tests compare them.
func (s *Server) Digest(ctx context.Context) (string, error) {
	h := sha256.New()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			fmt.Fprintf(h, "bucket %q seq %d\n", name, b.Sequence())
			return digestBucket(h, name, b)
		})
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestBucket(h io.Writer, name []byte, b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			fmt.Fprintf(h, "sub %q seq %d\n", k, b.Bucket(k).Sequence())
			return digestBucket(h, k, b.Bucket(k))
		}
		if string(name) == string(bktMeta) && string(k) == string(keyRaftIndex) {
			return nil
		}
		fmt.Fprintf(h, "%q=%q\n", k, v)
		return nil
	})
}
