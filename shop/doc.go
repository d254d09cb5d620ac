// Package shop owns the demo storefront that proves depot: it composes
// the catalog service (package catalog), the review service (package
// reviews) and the web pages (package web) into one HTTP server, runs them
// in one process or one role per process, and loads a demo catalog.
//
// The shop imports none of depot's packages: it reaches depot only through
// its S3 API with minio-go (package objstore), like any customer. Each
// service keeps its records in its own bbolt file under Config.DataDir
// (catalog.db, reviews.db; layouts in each package's doc), never image
// bytes; browsers fetch images straight from depot's gateway (public-read
// buckets, immutable Cache-Control) and upload them there with presigned
// PUT URLs.
package shop
