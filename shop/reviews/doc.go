// Package reviews owns the review service: reviews of products (rating
// 1-5, text, author, up to 5 photos) and each product's rating summary in
// its own bbolt file, the photos in depot's bucket "reviews" through S3
// (objstore), the background worker that writes each photo's sizes, and
// the JSON API under /api/reviews. It knows products only by id: the
// catalog is another service.
//
// It never stores photo bytes in bbolt and never reads depot's disks.
//
// bbolt layout (file Config.DBPath):
//
//	reviews/<productID>/<reviewID> -> JSON Review (reviewID: 24 hex digits,
//	                                  creation time first, so key order is age)
//	summary/<productID>            -> JSON {"count": n, "sum": total of ratings}
//	byid/<reviewID>                -> productID
//	jobs/<seq>                     -> jobqueue record; payload JSON
//	                                  {"kind":"resize","product":p,"review":r,"image":i}
//
// Object keys in the reviews bucket:
//
//	uploads/<32 hex>                          originals
//	reviews/<reviewID>/<imageID>/<size>.jpg   thumb, full (immutable)
//
// JSON API (writes need Content-Type application/json, or image/* for raw
// photo bodies, which a cross-site form cannot send):
//
//	GET  /api/reviews/products/{pid}?page=&per_page=  {reviews,total,page,per_page,count,average}
//	POST /api/reviews/products/{pid}                  create {rating,text,author,photo_keys:[...]}
//	GET  /api/reviews/reviews/{id}
//	POST /api/reviews/uploads                         {content_type} -> presigned PUT
//	POST /api/reviews/photos                          raw image/* body -> {"key": ...} to put in photo_keys
package reviews
