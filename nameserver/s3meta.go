package nameserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/internal/policy"
	"depot/nameserver/nsclient"
)

// This file keeps what the S3 gateway needs beside buckets and keys: access
// keys and their policies (bucket "users"), bucket settings (fields of the bucket record) and
// multipart uploads (buckets "uploads" and "parts"); see doc.go.

// S3 commands; their payloads are the types named.
const (
	CmdPutUser        CommandType = "put_user"        // nsclient.User
	CmdDeleteUser     CommandType = "delete_user"     // userCmd
	CmdSetUserPolicy  CommandType = "set_user_policy" // userPolicyCmd
	CmdSetBucket      CommandType = "set_bucket"      // setBucketCmd
	CmdCreateUpload   CommandType = "create_upload"   // nsclient.Upload
	CmdPutPart        CommandType = "put_part"        // putPartCmd
	CmdCompleteUpload CommandType = "complete_upload" // completeUploadCmd
	CmdAbortUpload    CommandType = "abort_upload"    // uploadKeyCmd
)

var (
	bktUsers   = []byte("users")
	bktUploads = []byte("uploads")
	bktParts   = []byte("parts")
)

type userCmd struct {
	AccessKey string `json:"access_key"`
}

type userPolicyCmd struct {
	AccessKey string `json:"access_key"`
	Policy    string `json:"policy"`
}

type setBucketCmd struct {
	Name     string                  `json:"name"`
	Settings nsclient.BucketSettings `json:"settings"`
}

type uploadKeyCmd struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	ID     string `json:"id"`
}

type putPartCmd struct {
	uploadKeyCmd
	Part nsclient.Part `json:"part"`
}

type completeUploadCmd struct {
	uploadKeyCmd
	nsclient.CompleteRequest
}

// MaxPartNumber is the highest multipart part number, as in S3.
const MaxPartNumber = 10000

// uploadKey is the key of an upload in the uploads bucket: the bucket name's
// length (uint16), the bucket name, the object key, 0x00 and the upload id.
// Its parts are under the same key followed by the part number (uint32).
func uploadKey(bucket, key, id string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(bucket)))
	b = append(b, bucket...)
	b = append(b, key...)
	b = append(b, 0)
	return append(b, id...)
}

func uploadPrefix(bucket, prefix string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(bucket)))
	b = append(b, bucket...)
	return append(b, prefix...)
}

func decodeAny[T any](cmd Command) (T, error) {
	var v T
	err := decode(cmd, &v)
	return v, err
}

// applyS3 applies the commands of this file; ok is false for other types.
func (s *store) applyS3(tx *bbolt.Tx, cmd Command) (res any, ok bool, err error) {
	switch cmd.Type {
	case CmdPutUser:
		u, err := decodeAny[nsclient.User](cmd)
		if err != nil {
			return nil, true, err
		}
		if u.AccessKey == "" || u.Secret == "" {
			return nil, true, fmt.Errorf("%w: access key and secret are required", depot.ErrBadRequest)
		}
		if u.Created.IsZero() {
			u.Created = cmd.Time
		}
		return nil, true, putJSON(tx.Bucket(bktUsers), []byte(u.AccessKey), u)
	case CmdDeleteUser:
		c, err := decodeAny[userCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		b := tx.Bucket(bktUsers)
		if b.Get([]byte(c.AccessKey)) == nil {
			return nil, true, fmt.Errorf("user %q: %w", c.AccessKey, depot.ErrNotFound)
		}
		return nil, true, del(b, []byte(c.AccessKey))
	case CmdSetUserPolicy:
		c, err := decodeAny[userPolicyCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		b := tx.Bucket(bktUsers)
		raw := b.Get([]byte(c.AccessKey))
		if raw == nil {
			return nil, true, fmt.Errorf("user %q: %w", c.AccessKey, depot.ErrNotFound)
		}
		var u nsclient.User
		if err := json.Unmarshal(raw, &u); err != nil {
			return nil, true, fmt.Errorf("user %q: %w", c.AccessKey, depot.ErrCorrupt)
		}
		u.Policy = c.Policy
		return nil, true, putJSON(b, []byte(u.AccessKey), u)
	case CmdSetBucket:
		c, err := decodeAny[setBucketCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		res, err := applySetBucket(tx, c)
		return res, true, err
	case CmdCreateUpload:
		u, err := decodeAny[nsclient.Upload](cmd)
		if err != nil {
			return nil, true, err
		}
		if _, err := objectsOf(tx, u.Bucket); err != nil {
			return nil, true, err
		}
		if err := checkKey(u.Key); err != nil {
			return nil, true, err
		}
		if u.ID == "" || strings.IndexByte(u.ID, 0) >= 0 {
			return nil, true, fmt.Errorf("%w: bad upload id", depot.ErrBadRequest)
		}
		if u.Initiated.IsZero() {
			u.Initiated = cmd.Time
		}
		k := uploadKey(u.Bucket, u.Key, u.ID)
		if tx.Bucket(bktUploads).Get(k) != nil {
			return nil, true, fmt.Errorf("upload %s: %w", u.ID, depot.ErrExists)
		}
		return u, true, putJSON(tx.Bucket(bktUploads), k, u)
	case CmdPutPart:
		c, err := decodeAny[putPartCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		res, err := applyPutPart(tx, cmd, c)
		return res, true, err
	case CmdCompleteUpload:
		c, err := decodeAny[completeUploadCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		res, err := s.applyComplete(tx, cmd, c)
		if err == nil {
			err = recordCompleted(tx, cmd, c)
		}
		return res, true, err
	case CmdAbortUpload:
		c, err := decodeAny[uploadKeyCmd](cmd)
		if err != nil {
			return nil, true, err
		}
		parts, err := getUpload(tx, c, nil)
		if err != nil {
			return nil, true, err
		}
		var segs []depot.Segment
		for _, p := range parts.Parts {
			segs = append(segs, p.Segments...)
		}
		if err := dropUpload(tx, c); err != nil {
			return nil, true, err
		}
		return nil, true, enqueueDeletes(tx, cmd, segs)
	}
	return nil, false, nil
}

func applySetBucket(tx *bbolt.Tx, c setBucketCmd) (nsclient.Bucket, error) {
	b := tx.Bucket(bktBuckets)
	raw := b.Get([]byte(c.Name))
	if raw == nil {
		return nsclient.Bucket{}, fmt.Errorf("bucket %q: %w", c.Name, depot.ErrNotFound)
	}
	var bk nsclient.Bucket
	if err := json.Unmarshal(raw, &bk); err != nil {
		return bk, fmt.Errorf("bucket %q: %w", c.Name, depot.ErrCorrupt)
	}
	if c.Settings.Public != nil {
		bk.Public = *c.Settings.Public
	}
	if c.Settings.CORS != nil {
		bk.CORS = *c.Settings.CORS
	}
	if c.Settings.Policy != nil {
		bk.Policy = *c.Settings.Policy
	}
	if c.Settings.Encryption != nil {
		bk.Encryption = *c.Settings.Encryption
	}
	if c.Settings.Tags != nil {
		bk.Tags = *c.Settings.Tags
	}
	if v := c.Settings.Versioning; v != nil {
		if *v != nsclient.VersioningEnabled && *v != nsclient.VersioningSuspended {
			return bk, fmt.Errorf("%w: versioning %q (want %s or %s)", depot.ErrBadRequest, *v,
				nsclient.VersioningEnabled, nsclient.VersioningSuspended)
		}
		if *v != nsclient.VersioningEnabled && (bk.ObjectLock || c.Settings.ObjectLock != nil) {
			return bk, fmt.Errorf("%w: versioning cannot be suspended on a bucket with object lock", depot.ErrBadRequest)
		}
		bk.Versioning = *v
	}
	if l := c.Settings.ObjectLock; l != nil {
		if !*l {
			return bk, fmt.Errorf("%w: object lock cannot be turned off", depot.ErrBadRequest)
		}
		if bk.Versioning == nsclient.VersioningSuspended {
			return bk, fmt.Errorf("%w: object lock needs versioning enabled", depot.ErrBadRequest)
		}
		bk.ObjectLock, bk.Versioning = true, nsclient.VersioningEnabled
	}
	if l := c.Settings.Lifecycle; l != nil {
		if err := checkLifecycle(*l); err != nil {
			return bk, err
		}
		bk.Lifecycle = *l
	}
	if d := c.Settings.DefaultRetention; d != nil {
		switch {
		case !bk.ObjectLock:
			return bk, fmt.Errorf("%w: bucket %q has no object lock", depot.ErrBadRequest, c.Name)
		case d.Mode == "":
			bk.DefaultRetention = nil
		case d.Mode != depot.LockGovernance && d.Mode != depot.LockCompliance:
			return bk, fmt.Errorf("%w: retention mode %q", depot.ErrBadRequest, d.Mode)
		case (d.Days > 0) == (d.Years > 0) || d.Days < 0 || d.Years < 0 || d.Days > 36500 || d.Years > 100:
			return bk, fmt.Errorf("%w: default retention needs Days or Years (one, positive)", depot.ErrBadRequest)
		default:
			dr := *d
			bk.DefaultRetention = &dr
		}
	}
	if c.Settings.Owner != nil {
		bk.Owner = *c.Settings.Owner
	}
	return bk, putJSON(b, []byte(c.Name), bk)
}

// getUpload reads an upload and its parts. When keep is set, only parts it
// returns true for are kept in the answer.
func getUpload(tx *bbolt.Tx, c uploadKeyCmd, keep func(nsclient.Part) bool) (nsclient.UploadInfo, error) {
	var info nsclient.UploadInfo
	k := uploadKey(c.Bucket, c.Key, c.ID)
	raw := tx.Bucket(bktUploads).Get(k)
	if raw == nil {
		return info, fmt.Errorf("upload %s of %s/%s: %w", c.ID, c.Bucket, c.Key, depot.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &info.Upload); err != nil {
		return info, fmt.Errorf("upload %s: %w", c.ID, depot.ErrCorrupt)
	}
	info.Parts = []nsclient.Part{}
	cur := tx.Bucket(bktParts).Cursor()
	for pk, pv := cur.Seek(k); pk != nil && bytes.HasPrefix(pk, k); pk, pv = cur.Next() {
		if len(pk) != len(k)+4 {
			continue
		}
		var p nsclient.Part
		if err := json.Unmarshal(pv, &p); err != nil {
			return info, fmt.Errorf("upload %s part: %w", c.ID, depot.ErrCorrupt)
		}
		if keep == nil || keep(p) {
			info.Parts = append(info.Parts, p)
		}
	}
	return info, nil
}

func dropUpload(tx *bbolt.Tx, c uploadKeyCmd) error {
	k := uploadKey(c.Bucket, c.Key, c.ID)
	pb := tx.Bucket(bktParts)
	var keys [][]byte
	cur := pb.Cursor()
	for pk, _ := cur.Seek(k); pk != nil && bytes.HasPrefix(pk, k); pk, _ = cur.Next() {
		if len(pk) == len(k)+4 {
			keys = append(keys, bytes.Clone(pk))
		}
	}
	for _, pk := range keys {
		if err := del(pb, pk); err != nil {
			return err
		}
	}
	return del(tx.Bucket(bktUploads), k)
}

func applyPutPart(tx *bbolt.Tx, cmd Command, c putPartCmd) (any, error) {
	k := uploadKey(c.Bucket, c.Key, c.ID)
	if tx.Bucket(bktUploads).Get(k) == nil {
		return nil, fmt.Errorf("upload %s: %w", c.ID, depot.ErrNotFound)
	}
	p := c.Part
	if p.Number < 1 || p.Number > MaxPartNumber {
		return nil, fmt.Errorf("%w: part number %d", depot.ErrBadRequest, p.Number)
	}
	var sum int64
	for _, sg := range p.Segments {
		if _, err := depot.ParseFid(sg.Fid); err != nil {
			return nil, err
		}
		sum += sg.Size
	}
	want := p.Size
	if p.Stream != nil {
		if err := checkStream(*p.Stream); err != nil {
			return nil, err
		}
		if p.Stream.Size != p.Size {
			return nil, fmt.Errorf("%w: part stream holds %d bytes, part size is %d", depot.ErrBadRequest, p.Stream.Size, p.Size)
		}
		want = p.Stream.StoredSize()
	}
	if sum != want {
		return nil, fmt.Errorf("%w: part segments hold %d bytes, want %d", depot.ErrBadRequest, sum, want)
	}
	if err := checkNotSwept(tx, p.Segments); err != nil {
		return nil, err
	}
	if p.Modified.IsZero() {
		p.Modified = cmd.Time
	}
	pk := binary.BigEndian.AppendUint32(k, uint32(p.Number))
	pb := tx.Bucket(bktParts)
	var replaced []depot.Segment
	if raw := pb.Get(pk); raw != nil {
		var old nsclient.Part
		if err := json.Unmarshal(raw, &old); err != nil {
			return nil, fmt.Errorf("part: %w", depot.ErrCorrupt)
		}
		replaced = unusedSegments(old.Segments, p.Segments)
	}
	if err := putJSON(pb, pk, p); err != nil {
		return nil, err
	}
	if err := enqueueDeletes(tx, cmd, replaced); err != nil {
		return nil, err
	}
	if err := addRefs(tx, p.Segments, partOwner(pk)); err != nil {
		return nil, err
	}
	if replaced == nil {
		replaced = []depot.Segment{}
	}
	return nsclient.PutResult{Replaced: replaced}, nil
}

// applyComplete makes the named parts one object. The object's encryption
// comes from the upload and its part records, never from the request: a
// part uploaded again after the gateway read the upload has a new data key,
// and only its record knows it. The object is committed first, since it
// is what can still be refused; the upload and its unused parts go after.
func (s *store) applyComplete(tx *bbolt.Tx, cmd Command, c completeUploadCmd) (any, error) {
	info, err := getUpload(tx, c.uploadKeyCmd, nil)
	if err != nil {
		return nil, err
	}
	byNum := make(map[int]nsclient.Part, len(info.Parts))
	for _, p := range info.Parts {
		byNum[p.Number] = p
	}
	enc := info.Upload.Encryption
	o := depot.Object{Bucket: c.Bucket, Key: c.Key, ETag: c.ETag, ContentType: info.Upload.ContentType,
		Meta: info.Upload.Meta, Segments: []depot.Segment{}, Lock: info.Upload.Lock}
	if enc != nil {
		o.Encryption = &depot.Encryption{Mode: enc.Mode, KeyCheck: enc.KeyCheck, Streams: []depot.Stream{}}
	}
	used := make(map[int]bool, len(c.Parts))
	last := 0
	for _, cp := range c.Parts {
		p, ok := byNum[cp.Number]
		if !ok || p.ETag != cp.ETag {
			return nil, fmt.Errorf("%w: part %d was not uploaded with ETag %q", depot.ErrBadRequest, cp.Number, cp.ETag)
		}
		if cp.Number <= last {
			return nil, fmt.Errorf("%w: part %d out of order", depot.ErrBadRequest, cp.Number)
		}
		if (enc != nil) != (p.Stream != nil) {
			return nil, fmt.Errorf("%w: part %d is not encrypted as its upload is", depot.ErrBadRequest, cp.Number)
		}
		last = cp.Number
		used[cp.Number] = true
		o.Segments = append(o.Segments, p.Segments...)
		o.PartSizes = append(o.PartSizes, p.Size)
		o.Size += p.Size
		if enc != nil {
			o.Encryption.Streams = append(o.Encryption.Streams, *p.Stream)
		}
	}
	// The condition is decided by applyPutObject, in this transaction,
	// before the upload is dropped: a refused completion leaves the upload
	// as it was (a refused command writes nothing), to be completed again.
	o.Precondition = c.Precondition
	res, err := s.applyPutObject(tx, cmd, o)
	if err != nil {
		return nil, err
	}
	var unused []depot.Segment
	for _, p := range info.Parts {
		if !used[p.Number] {
			unused = append(unused, p.Segments...)
		}
	}
	if err := dropUpload(tx, c.uploadKeyCmd); err != nil {
		return nil, err
	}
	if err := enqueueDeletes(tx, cmd, unused); err != nil {
		return nil, err
	}
	return res, nil
}

// hasUploads reports whether the namespace bucket name has a multipart
// upload in progress.
func hasUploads(tx *bbolt.Tx, name string) bool {
	pfx := uploadPrefix(name, "")
	k, _ := tx.Bucket(bktUploads).Cursor().Seek(pfx)
	return k != nil && bytes.HasPrefix(k, pfx)
}

// User returns an access key, or an error wrapping depot.ErrNotFound.
func (s *Server) User(ctx context.Context, accessKey string) (nsclient.User, error) {
	var u nsclient.User
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bktUsers).Get([]byte(accessKey))
		if raw == nil {
			return fmt.Errorf("user %q: %w", accessKey, depot.ErrNotFound)
		}
		return json.Unmarshal(raw, &u)
	})
	return u, err
}

// Users returns every access key.
func (s *Server) Users(ctx context.Context) ([]nsclient.User, error) {
	out := []nsclient.User{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktUsers).ForEach(func(_, v []byte) error {
			var u nsclient.User
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// Upload returns an upload and its parts.
func (s *Server) Upload(ctx context.Context, bucket, key, id string) (nsclient.UploadInfo, error) {
	var info nsclient.UploadInfo
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		info, err = getUpload(tx, uploadKeyCmd{Bucket: bucket, Key: key, ID: id}, nil)
		return err
	})
	return info, err
}

// Uploads lists the uploads of a bucket by key, then upload id.
func (s *Server) Uploads(ctx context.Context, bucket string, o nsclient.UploadListOptions) (nsclient.UploadList, error) {
	limit := o.Limit
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	res := nsclient.UploadList{Uploads: []nsclient.Upload{}}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(bucket)) == nil {
			return fmt.Errorf("bucket %q: %w", bucket, depot.ErrNotFound)
		}
		pfx := uploadPrefix(bucket, o.Prefix)
		cur := tx.Bucket(bktUploads).Cursor()
		for k, v := cur.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = cur.Next() {
			var u nsclient.Upload
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("upload: %w", depot.ErrCorrupt)
			}
			if o.AfterKey != "" && (u.Key < o.AfterKey || u.Key == o.AfterKey && (o.AfterID == "" || u.ID <= o.AfterID)) {
				continue
			}
			if len(res.Uploads) == limit {
				res.Truncated = true
				break
			}
			res.Uploads = append(res.Uploads, u)
		}
		return nil
	})
	return res, err
}

// validUserPolicy checks a user record's identity policy ("" is none).
// Every route that writes a user record calls it before proposing: the
// gateway trusts what the record holds, so nothing unparsable may get in.
// (It is checked at the edge, not in apply, so that a log written before
// the check replays the same on every member.)
func validUserPolicy(p string) error {
	if p == "" {
		return nil
	}
	if _, err := policy.Parse([]byte(p), policy.Identity); err != nil {
		return fmt.Errorf("%w: user policy: %v", depot.ErrBadRequest, err)
	}
	return nil
}

func (s *Server) routeS3(api *http.ServeMux) {
	s.route(api, "GET /users", func(w http.ResponseWriter, r *http.Request) {
		us, err := s.Users(r.Context())
		s.answer(w, nsclient.UserList{Users: us}, err)
	})
	s.route(api, "GET /users/{key}", func(w http.ResponseWriter, r *http.Request) {
		u, err := s.User(r.Context(), r.PathValue("key"))
		s.answer(w, u, err)
	})
	s.route(api, "PUT /users", func(w http.ResponseWriter, r *http.Request) {
		var u nsclient.User
		if err := readJSON(w, r, maxSmallBody, &u); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := validUserPolicy(u.Policy); err != nil {
			httpx.WriteError(w, err)
			return
		}
		_, err := s.store.propose(r.Context(), CmdPutUser, u)
		s.answer(w, nil, err)
	})
	s.route(api, "PUT /users/{key}/policy", func(w http.ResponseWriter, r *http.Request) {
		var p nsclient.UserPolicy
		if err := readJSON(w, r, maxSmallBody, &p); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := validUserPolicy(p.Policy); err != nil {
			httpx.WriteError(w, err)
			return
		}
		_, err := s.store.propose(r.Context(), CmdSetUserPolicy, userPolicyCmd{AccessKey: r.PathValue("key"), Policy: p.Policy})
		s.answer(w, nil, err)
	})
	s.route(api, "DELETE /users/{key}", func(w http.ResponseWriter, r *http.Request) {
		_, err := s.store.propose(r.Context(), CmdDeleteUser, userCmd{AccessKey: r.PathValue("key")})
		s.answer(w, nil, err)
	})
	s.route(api, "POST /buckets/{bucket}/settings", func(w http.ResponseWriter, r *http.Request) {
		var c setBucketCmd
		if err := readJSON(w, r, maxSmallBody, &c.Settings); err != nil {
			httpx.WriteError(w, err)
			return
		}
		c.Name = r.PathValue("bucket")
		res, err := s.store.propose(r.Context(), CmdSetBucket, c)
		s.answer(w, res, err)
	})
	s.route(api, "POST /uploads", func(w http.ResponseWriter, r *http.Request) {
		var u nsclient.Upload
		if err := readJSON(w, r, maxSmallBody, &u); err != nil {
			httpx.WriteError(w, err)
			return
		}
		res, err := s.store.propose(r.Context(), CmdCreateUpload, u)
		s.answer(w, res, err)
	})
	s.route(api, "GET /uploads/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		info, err := s.Upload(r.Context(), r.PathValue("bucket"), q.Get("key"), q.Get("id"))
		s.answer(w, info, err)
	})
	s.route(api, "DELETE /uploads/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		_, err := s.store.propose(r.Context(), CmdAbortUpload, uploadCmdOf(r))
		s.answer(w, nil, err)
	})
	s.route(api, "GET /uploadlist/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := queryInt(r, "limit")
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		l, err := s.Uploads(r.Context(), r.PathValue("bucket"), nsclient.UploadListOptions{
			Prefix: q.Get("prefix"), AfterKey: q.Get("after_key"), AfterID: q.Get("after_id"), Limit: limit})
		s.answer(w, l, err)
	})
	s.route(api, "PUT /parts/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		c := putPartCmd{uploadKeyCmd: uploadCmdOf(r)}
		if err := readJSON(w, r, maxObjectBody, &c.Part); err != nil {
			httpx.WriteError(w, err)
			return
		}
		res, err := s.store.propose(r.Context(), CmdPutPart, c)
		s.answer(w, res, err)
	})
	s.route(api, "GET /completed/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.CompletedUpload(r.Context(), uploadCmdOf(r))
		s.answer(w, c, err)
	})
	s.route(api, "POST /complete/{bucket}", func(w http.ResponseWriter, r *http.Request) {
		c := completeUploadCmd{uploadKeyCmd: uploadCmdOf(r)}
		if err := readJSON(w, r, maxObjectBody, &c.CompleteRequest); err != nil {
			httpx.WriteError(w, err)
			return
		}
		res, err := s.store.propose(r.Context(), CmdCompleteUpload, c)
		s.answer(w, res, err)
	})
}

func uploadCmdOf(r *http.Request) uploadKeyCmd {
	q := r.URL.Query()
	return uploadKeyCmd{Bucket: r.PathValue("bucket"), Key: q.Get("key"), ID: q.Get("id")}
}

// answer writes err, or v as JSON (204 when v is nil).
func (s *Server) answer(w http.ResponseWriter, v any, err error) {
	switch {
	case err != nil:
		httpx.WriteError(w, err)
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		httpx.WriteJSON(w, http.StatusOK, v)
	}
}
