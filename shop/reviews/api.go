package reviews

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"depot/shop/internal/httpjson"
)

// Handler serves the JSON API under /api/reviews.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/reviews/products/{pid}", s.apiList)
	mux.HandleFunc("POST /api/reviews/products/{pid}", s.apiCreate)
	mux.HandleFunc("GET /api/reviews/reviews/{id}", s.apiGet)
	mux.HandleFunc("POST /api/reviews/uploads", s.apiPresign)
	mux.HandleFunc("POST /api/reviews/photos", s.apiPhoto)
	return mux
}

func (s *Service) fail(w http.ResponseWriter, err error) {
	httpjson.Fail(w, err, ErrInvalid, ErrNotFound)
}

func (s *Service) apiList(w http.ResponseWriter, r *http.Request) {
	p, err := s.List(r.Context(), r.PathValue("pid"), httpjson.IntParam(r, "page"), httpjson.IntParam(r, "per_page"))
	if err != nil {
		s.fail(w, err)
		return
	}
	for i, rv := range p.Reviews {
		p.Reviews[i] = s.WithURLs(rv)
	}
	httpjson.Write(w, http.StatusOK, p)
}

func (s *Service) apiCreate(w http.ResponseWriter, r *http.Request) {
	var in Input
	if err := httpjson.Decode(w, r, &in); err != nil {
		s.fail(w, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	rv, err := s.Create(r.Context(), r.PathValue("pid"), in)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/api/reviews/reviews/"+rv.ID)
	httpjson.Write(w, http.StatusCreated, s.WithURLs(rv))
}

func (s *Service) apiGet(w http.ResponseWriter, r *http.Request) {
	rv, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, s.WithURLs(rv))
}

func (s *Service) apiPresign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ContentType string `json:"content_type"`
	}
	if err := httpjson.Decode(w, r, &body); err != nil {
		s.fail(w, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	if !strings.HasPrefix(body.ContentType, "image/") {
		s.fail(w, fmt.Errorf("%w: content_type must be an image type", ErrInvalid))
		return
	}
	u, err := s.PresignUpload(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, u)
}

func (s *Service) apiPhoto(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "image/") {
		s.fail(w, fmt.Errorf("%w: send the photo as image/*", ErrInvalid))
		return
	}
	key, err := s.StorePhoto(r.Context(), http.MaxBytesReader(w, r.Body, s.cfg.MaxPhotoBytes), r.ContentLength)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]string{"key": key})
}
