// Package catalog owns the catalog service: products (title, description,
// price, stock, images in order) in its own bbolt file, their images in
// depot's bucket "catalog" through S3 (objstore), the background worker
// that writes each image's sizes, an in-process cache of product records
// and list pages, and the JSON API under /api/catalog.
//
// It never stores image bytes in bbolt and never reads depot's disks.
//
// bbolt layout (file Config.DBPath):
//
//	products/<id>  -> JSON Product (id: 24 hex digits, 8 bytes of creation
//	                  time in ns then 4 random bytes, so key order is age)
//	jobs/<seq>     -> jobqueue record; payload JSON job:
//	                  {"kind":"resize","product":id,"image":imageID} or
//	                  {"kind":"delete","keys":[...]}
//
// Object keys in the catalog bucket:
//
//	uploads/<32 hex>                        originals (presigned PUT or shop upload)
//	products/<id>/<imageID>/<size>.jpg      thumb, listing, full (immutable)
//
// JSON API (writes need Content-Type application/json, which a cross-site
// form cannot send, except raw image bodies, which need a CORS preflight):
//
//	GET    /api/catalog/products?q=&page=&per_page=   list, newest first
//	POST   /api/catalog/products                      create {title,description,price_cents,stock}
//	GET    /api/catalog/products/{id}
//	PUT    /api/catalog/products/{id}                 update; optional "images":[ids] reorders/removes
//	DELETE /api/catalog/products/{id}
//	POST   /api/catalog/uploads                       {content_type} -> presigned PUT {url,method,key,expires}
//	POST   /api/catalog/products/{id}/images          {"key": upload key} or a raw image/* body -> 202 Image
package catalog
