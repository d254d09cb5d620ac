package nameserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"depot"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// Request body limits.
const (
	maxObjectBody = 8 << 20 // object metadata: many segments or parts
	maxSmallBody  = 1 << 20
)

// Handler returns the HTTP API. Everything but /healthz, /readyz and
// /metrics (which Config.MetricsToken may guard) needs a credential; see
// access.go.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	s.route(api, "POST /assign", s.handleAssign)
	s.route(api, "GET /volumes", s.handleVolumes)
	s.route(api, "GET /volumes/{id}", s.handleVolume)
	s.route(api, "POST /volumes/{id}/state", s.handleVolumeState)
	s.route(api, "POST /missed", s.handleMissed)
	s.route(api, "GET /missed", s.handleMissedList)
	s.route(api, "DELETE /missed", s.handleClearMissed)
	s.route(api, "GET /deletes", s.handleDeletes)
	s.route(api, "POST /deletes/ack", s.handleAckDeletes)
	s.route(api, "GET /buckets", s.handleBuckets)
	s.route(api, "PUT /buckets/{bucket}", s.handleCreateBucket)
	s.route(api, "GET /buckets/{bucket}", s.handleBucket)
	s.route(api, "DELETE /buckets/{bucket}", s.handleDeleteBucket)
	s.route(api, "PUT /objects/{bucket}", s.handlePutObject)
	s.route(api, "GET /objects/{bucket}", s.handleGetObject)
	s.route(api, "DELETE /objects/{bucket}", s.handleDeleteObject)
	s.route(api, "GET /list/{bucket}", s.handleList)
	s.route(api, "GET /versions/{bucket}", s.handleListVersions)
	s.route(api, "POST /lock/{bucket}", s.handleSetLock)
	s.route(api, "GET /status", s.handleStatus)
	s.routeS3(api)
	s.routeRepair(api)
	s.routeOrphans(api)
	s.routeUI(api)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	root.HandleFunc("GET /readyz", s.handleReady)
	root.Handle("GET /metrics", auth.MetricsGate(s.cfg.MetricsToken, s.cfg.Key, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	s.routeRaft(api)
	// Credentials are checked here, on the member the request reached;
	// a follower then forwards it to the leader (proxy.go).
	root.Handle("/", tlsconf.RequireClientCert(s.authenticate(s.proxy.wrap(api))))
	return root
}

// Routes returns the pattern of every route behind authentication (see
// access.go), for audits and tests.
func (s *Server) Routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(s.routes)))
}

// route registers h under pattern, counting requests by route and status.
func (s *Server) route(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.mu.Unlock()
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		body := &countingReader{ReadCloser: r.Body}
		r.Body = body
		if id := r.Header.Get(nsclient.HeaderRequestID); id != "" {
			// The commands this request proposes carry its id (propose).
			if err := checkRequestID(id); err != nil {
				httpx.WriteError(sw, err)
			} else {
				h(sw, r.WithContext(nsclient.WithRequestID(r.Context(), id)))
			}
		} else {
			h(sw, r)
		}
		s.metrics.requests.WithLabelValues(pattern, strconv.Itoa(sw.status)).Inc()
		s.metrics.latency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
		s.metrics.bytesIn.Add(float64(body.n))
		s.metrics.bytesOut.Add(float64(sw.bytes))
	})
}

// checkRequestID refuses request ids that are too long or not printable
// ASCII (they are bbolt keys, and end in 0x00 and the command type).
func checkRequestID(id string) error {
	if len(id) > nsclient.MaxRequestIDLen {
		return fmt.Errorf("%w: request id of %d bytes, at most %d", depot.ErrBadRequest, len(id), nsclient.MaxRequestIDLen)
	}
	for i := range len(id) {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("%w: request id %q: printable ASCII only", depot.ErrBadRequest, id)
		}
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// countingReader counts the bytes read from a request body.
type countingReader struct {
	io.ReadCloser
	n int64
}

func (r *countingReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.n += int64(n)
	return n, err
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// readJSON decodes a request body of at most limit bytes into v.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: body over %d bytes", depot.ErrTooLarge, limit)
		}
		return fmt.Errorf("%w: body: %v", depot.ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body: trailing data", depot.ErrBadRequest)
	}
	return nil
}

func queryInt(r *http.Request, name string) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q", depot.ErrBadRequest, name, s)
	}
	return n, nil
}

func (s *Server) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req nsclient.AssignRequest
	if err := readJSON(w, r, maxSmallBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	a, err := s.Assign(r.Context(), req.K, req.M, req.Count)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}

func volumeID(r *http.Request) (depot.VolumeID, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%w: volume id %q", depot.ErrBadRequest, r.PathValue("id"))
	}
	return depot.VolumeID(id), nil
}

func (s *Server) handleVolume(w http.ResponseWriter, r *http.Request) {
	id, err := volumeID(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	v, err := s.Volume(id)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

func (s *Server) handleVolumes(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, nsclient.VolumeList{Volumes: s.Volumes()})
}

func (s *Server) handleVolumeState(w http.ResponseWriter, r *http.Request) {
	id, err := volumeID(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var req nsclient.VolumeStateRequest
	if err := readJSON(w, r, maxSmallBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.SetVolumeState(r.Context(), id, req.State); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMissed(w http.ResponseWriter, r *http.Request) {
	var req nsclient.MissedWrite
	if err := readJSON(w, r, maxSmallBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.Missed(r.Context(), req.Fid, req.Shards); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMissedList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	list, err := s.MissedWrites(r.Context(), limit)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, nsclient.MissedList{Missed: list})
}

func (s *Server) handleClearMissed(w http.ResponseWriter, r *http.Request) {
	var req nsclient.FidList
	if err := readJSON(w, r, maxObjectBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.ClearMissed(r.Context(), req.Fids); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDeletes(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	list, err := s.PendingDeletes(r.Context(), limit)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, nsclient.DeleteList{Deletes: list})
}

func (s *Server) handleAckDeletes(w http.ResponseWriter, r *http.Request) {
	var req nsclient.SeqList
	if err := readJSON(w, r, maxObjectBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.AckDeletes(r.Context(), req.Seqs); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleBuckets(w http.ResponseWriter, r *http.Request) {
	list, err := s.Buckets(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, nsclient.BucketList{Buckets: list})
}

func (s *Server) handleCreateBucket(w http.ResponseWriter, r *http.Request) {
	b, err := s.CreateBucket(r.Context(), r.PathValue("bucket"))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

func (s *Server) handleBucket(w http.ResponseWriter, r *http.Request) {
	b, err := s.Bucket(r.Context(), r.PathValue("bucket"))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, b)
}

func (s *Server) handleDeleteBucket(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteBucket(r.Context(), r.PathValue("bucket")); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// objectKey returns the bucket from the path and the key from ?key=.
func objectKey(r *http.Request) (string, string, error) {
	q := r.URL.Query()
	if !q.Has("key") {
		return "", "", fmt.Errorf("%w: missing ?key=", depot.ErrBadRequest)
	}
	key := q.Get("key")
	if err := checkKey(key); err != nil {
		return "", "", err
	}
	return r.PathValue("bucket"), key, nil
}

func (s *Server) handlePutObject(w http.ResponseWriter, r *http.Request) {
	bucket, key, err := objectKey(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var o depot.Object
	if err := readJSON(w, r, maxObjectBody, &o); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if (o.Bucket != "" && o.Bucket != bucket) || (o.Key != "" && o.Key != key) {
		httpx.WriteError(w, fmt.Errorf("%w: body names %s/%s, URL %s/%s", depot.ErrBadRequest, o.Bucket, o.Key, bucket, key))
		return
	}
	o.Bucket, o.Key = bucket, key
	res, err := s.PutObject(r.Context(), o)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (s *Server) handleGetObject(w http.ResponseWriter, r *http.Request) {
	bucket, key, err := objectKey(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var o depot.Object
	if q := r.URL.Query(); q.Has("version") {
		o, err = s.GetObjectVersion(r.Context(), bucket, key, q.Get("version"))
	} else {
		o, err = s.GetObject(r.Context(), bucket, key)
	}
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, o)
}

func (s *Server) handleDeleteObject(w http.ResponseWriter, r *http.Request) {
	bucket, key, err := objectKey(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var version *string
	if q := r.URL.Query(); q.Has("version") {
		v := q.Get("version")
		version = &v
	}
	res, err := s.DeleteVersion(r.Context(), bucket, key, version, r.URL.Query().Get("bypass") == "true")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (s *Server) handleSetLock(w http.ResponseWriter, r *http.Request) {
	bucket, key, err := objectKey(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var req nsclient.LockRequest
	if err := readJSON(w, r, maxSmallBody, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.SetLock(r.Context(), bucket, key, r.URL.Query().Get("version"), req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleListVersions(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	q := r.URL.Query()
	res, err := s.ListVersions(r.Context(), r.PathValue("bucket"), nsclient.VersionListOptions{
		Prefix: q.Get("prefix"), KeyMarker: q.Get("key_marker"), VersionIDMarker: q.Get("version_marker"),
		Delimiter: q.Get("delimiter"), Limit: limit,
	})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	q := r.URL.Query()
	res, err := s.List(r.Context(), r.PathValue("bucket"), nsclient.ListOptions{
		Prefix: q.Get("prefix"), After: q.Get("after"), Delimiter: q.Get("delimiter"), Limit: limit,
	})
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ok, alive := s.Ready()
	if !ok {
		http.Error(w, fmt.Sprintf("not ready: %d of %d dataservers alive\n", alive, s.cfg.ReadyDataservers),
			http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ready: %d dataservers alive\n", alive)
}
