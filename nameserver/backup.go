package nameserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
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
// cluster: what was written since the backup is gone.
func (s *Server) Restore(ctx context.Context, r io.Reader) error {
	if s.raft == nil {
		return s.store.restoreFrom(r, s.cfg.Dir, false)
	}
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
	// The backup's raft index belongs to the log it came from: drop it,
	// so that the entries after the restore are applied here.
	db, err := bbolt.Open(tmp.Name(), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%w: restore: not a database: %v", depot.ErrBadRequest, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if meta == nil || string(meta.Get(keyVersion)) != formatVersion {
			return fmt.Errorf("%w: not a nameserver database of format %s", depot.ErrBadRequest, formatVersion)
		}
		return meta.Delete(keyRaftIndex)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	defer f.Close()
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
// every bucket but the raft index, in order. Members of a raft group that
// applied the same entries have the same digest; tests compare them.
func (s *Server) Digest(ctx context.Context) (string, error) {
	h := sha256.New()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			fmt.Fprintf(h, "bucket %q\n", name)
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
			fmt.Fprintf(h, "sub %q\n", k)
			return digestBucket(h, k, b.Bucket(k))
		}
		if string(name) == string(bktMeta) && string(k) == string(keyRaftIndex) {
			return nil
		}
		fmt.Fprintf(h, "%q=%q\n", k, v)
		return nil
	})
}
