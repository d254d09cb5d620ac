package nameserver

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// Backup writes a consistent copy of the database (a bbolt file) to w while
// the nameserver goes on serving, and returns its size.
func (s *Server) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("nameserver: backup: %w", err)
	}
	return n, nil
}

// Restore replaces the whole state with a backup read from r. Alone, the
// database's content is replaced in one transaction; in a raft group the
// leader takes the backup as a snapshot that every member installs
// (raft.Restore). Meant for disaster recovery into a fresh or quiet
// cluster: what was written since the backup is gone from the namespace.
//
// The backup's id counters are old: the volumes and needle ids leased
// since it was taken live on the dataservers. Before installing it,
// Restore lifts them (liftCounters) above the highest ids that this
// database, the backup and every dataserver gossip shows up report, plus
// a margin for what none of them can know (leases in clients' hands,
// dataservers that are down), so that no id is ever handed out twice.
func (s *Server) Restore(ctx context.Context, r io.Reader) error {
	tmp, err := os.CreateTemp(s.cfg.Dir, "backup-*.db")
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	hw, err := s.highWater(ctx)
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	if err := prepareBackup(tmp.Name(), hw, s.log); err != nil {
		return err
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	defer f.Close()
	if s.raft == nil {
		return s.store.restoreFrom(f, s.cfg.Dir)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: st.Size()}
	if err := s.raft.r.Restore(meta, f, timeoutOf(ctx)); err != nil {
		return raftError(err)
	}
	return nil
}

// prepareBackup readies the staged backup at path for installing: it must
// be a database of this format; its raft index, which belongs to the log
// it came from, is dropped (the entries after the restore are applied
// here); and its id counters are lifted above hw.
func prepareBackup(path string, hw highWater, log *slog.Logger) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%w: restore: not a database: %v", depot.ErrBadRequest, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if meta == nil || string(meta.Get(keyVersion)) != formatVersion {
			return fmt.Errorf("%w: not a nameserver database of format %s", depot.ErrBadRequest, formatVersion)
		}
		if err := meta.Delete(keyRaftIndex); err != nil {
			return err
		}
		return liftCounters(tx, hw, log)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	return nil
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
		if err := s.Restore(r.Context(), r.Body); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
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
