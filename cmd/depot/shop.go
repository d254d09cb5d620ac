package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"depot/shop"
)

// runShop runs the demo shop (catalog, reviews, pages) against depot's S3
// API.
func runShop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	var cfg shop.Config
	fs.StringVar(&cfg.Addr, "addr", envOr("DEPOT_SHOP_ADDR", ":8090"), "listen address (env DEPOT_SHOP_ADDR)")
	enumVar(fs, &cfg.Role, "role", "DEPOT_SHOP_ROLE", shop.RoleAll, []string{shop.RoleAll, shop.RoleCatalog, shop.RoleReviews}, "all, catalog or reviews: which services this process runs (env DEPOT_SHOP_ROLE)")
	fs.StringVar(&cfg.DataDir, "data", envOr("DEPOT_SHOP_DATA", "shop-data"), "directory of the services' databases (env DEPOT_SHOP_DATA)")
	fs.StringVar(&cfg.S3.Endpoint, "s3", envOr("DEPOT_SHOP_S3", ""), "depot's S3 endpoint, e.g. http://127.0.0.1:8080 (env DEPOT_SHOP_S3)")
	fs.StringVar(&cfg.S3.AccessKey, "access-key", envOr("DEPOT_SHOP_ACCESS_KEY", envOr("AWS_ACCESS_KEY_ID", "")), "S3 access key (env DEPOT_SHOP_ACCESS_KEY or AWS_ACCESS_KEY_ID)")
	fs.StringVar(&cfg.S3.PublicURL, "public-url", envOr("DEPOT_SHOP_PUBLIC_URL", ""), "gateway URL as browsers reach it (default the --s3 URL; env DEPOT_SHOP_PUBLIC_URL)")
	origins := fs.String("origins", envOr("DEPOT_SHOP_ORIGINS", "*"), "comma-separated origins allowed to upload to depot from browsers (env DEPOT_SHOP_ORIGINS)")
	boolVar(fs, &cfg.SecureCookies, "secure-cookies", "DEPOT_SHOP_SECURE_COOKIES", false, "mark cookies Secure on plain-HTTP requests too, behind a TLS-terminating proxy (env DEPOT_SHOP_SECURE_COOKIES=true)")
	fs.BoolVar(&cfg.Seed, "seed", false, "load a demo catalog when the catalog is empty")
	countVar(fs, &cfg.SeedProducts, "seed-products", "", 36, "how many demo products --seed makes")
	countVar(fs, &cfg.Workers, "workers", "", 2, "image workers per service")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.S3.SecretKey = envOr("DEPOT_SHOP_SECRET_KEY", envOr("AWS_SECRET_ACCESS_KEY", ""))
	if cfg.S3.Endpoint == "" || cfg.S3.AccessKey == "" || cfg.S3.SecretKey == "" {
		return fmt.Errorf("--s3, --access-key and env DEPOT_SHOP_SECRET_KEY (or AWS_SECRET_ACCESS_KEY) are required")
	}
	if k := os.Getenv("DEPOT_SHOP_CSRF_KEY"); k != "" {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return fmt.Errorf("DEPOT_SHOP_CSRF_KEY: %w", err)
		}
		cfg.CSRFKey = b
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.S3.Logger = cfg.Logger
	return shop.Run(ctx, cfg)
}
