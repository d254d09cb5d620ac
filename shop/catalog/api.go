package catalog

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"depot/shop/internal/httpjson"
	"depot/shop/media"
)

// Handler serves the JSON API under /api/catalog.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/catalog/products", s.apiList)
	mux.HandleFunc("POST /api/catalog/products", s.apiCreate)
	mux.HandleFunc("GET /api/catalog/products/{id}", s.apiGet)
	mux.HandleFunc("PUT /api/catalog/products/{id}", s.apiUpdate)
	mux.HandleFunc("DELETE /api/catalog/products/{id}", s.apiDelete)
	mux.HandleFunc("POST /api/catalog/uploads", s.apiPresign)
	mux.HandleFunc("POST /api/catalog/products/{id}/images", s.apiAddImage)
	return mux
}

func (s *Service) fail(w http.ResponseWriter, err error) {
	httpjson.Fail(w, err, ErrInvalid, ErrNotFound)
}

func (s *Service) apiList(w http.ResponseWriter, r *http.Request) {
	res, err := s.List(r.Context(), ListOptions{Query: r.URL.Query().Get("q"), Page: httpjson.IntParam(r, "page"), PerPage: httpjson.IntParam(r, "per_page")})
	if err != nil {
		s.fail(w, err)
		return
	}
	out := res
	out.Products = make([]Product, len(res.Products))
	for i, p := range res.Products {
		out.Products[i] = s.WithURLs(p)
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *Service) apiCreate(w http.ResponseWriter, r *http.Request) {
	var in Input
	if err := httpjson.Decode(w, r, &in); err != nil {
		s.fail(w, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	if in.Images != nil {
		s.fail(w, fmt.Errorf("%w: a new product has no images to order", ErrInvalid))
		return
	}
	p, err := s.Create(r.Context(), in)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/api/catalog/products/"+p.ID)
	httpjson.Write(w, http.StatusCreated, s.WithURLs(p))
}

func (s *Service) apiGet(w http.ResponseWriter, r *http.Request) {
	p, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, s.WithURLs(p))
}

func (s *Service) apiUpdate(w http.ResponseWriter, r *http.Request) {
	var in Input
	if err := httpjson.Decode(w, r, &in); err != nil {
		s.fail(w, fmt.Errorf("%w: %v", ErrInvalid, err))
		return
	}
	p, err := s.Update(r.Context(), r.PathValue("id"), in)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, s.WithURLs(p))
}

func (s *Service) apiDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.Delete(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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

func (s *Service) apiAddImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var (
		im  media.Image
		err error
	)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case httpjson.IsJSON(r):
		var body struct {
			Key string `json:"key"`
		}
		if err := httpjson.Decode(w, r, &body); err != nil {
			s.fail(w, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		im, err = s.AttachUpload(r.Context(), id, body.Key)
	case strings.HasPrefix(mt, "image/"):
		im, err = s.UploadImage(r.Context(), id, http.MaxBytesReader(w, r.Body, s.cfg.MaxImageBytes), r.ContentLength)
	default:
		err = fmt.Errorf("%w: send {\"key\": ...} as application/json or the image itself as image/*", ErrInvalid)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusAccepted, im)
}
