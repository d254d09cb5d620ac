package main

import (
	"flag"
	"time"

	"depot/gateway"
	"depot/gateway/s3"
	"depot/internal/guard"
)

// gatewayLimits are the flags of a gateway's limits, shared by `depot
// gateway` and `depot server`; apply copies them into a gateway.Config.
type gatewayLimits struct {
	readHeader, bodyRead, idle time.Duration
	write                      time.Duration
	maxConns                   int
	perIP, perKey              float64
	burst                      int
	maxObject                  int64
}

func (l *gatewayLimits) register(fs *flag.FlagSet) {
	durationVar(fs, &l.readHeader, "read-header-timeout", "DEPOT_READ_HEADER_TIMEOUT", gateway.DefaultReadHeaderTimeout,
		"close connections that take longer to send a request's headers (env DEPOT_READ_HEADER_TIMEOUT)")
	durationVar(fs, &l.bodyRead, "body-read-timeout", "DEPOT_BODY_READ_TIMEOUT", gateway.DefaultBodyReadTimeout,
		"fail requests whose body sends nothing for this long (env DEPOT_BODY_READ_TIMEOUT)")
	durationVar(fs, &l.idle, "idle-timeout", "DEPOT_IDLE_TIMEOUT", gateway.DefaultIdleTimeout,
		"close kept-alive connections idle this long (env DEPOT_IDLE_TIMEOUT)")
	durationVar(fs, &l.write, "write-timeout", "DEPOT_WRITE_TIMEOUT", gateway.DefaultWriteTimeout,
		"close connections whose client takes nothing of a response for this long (env DEPOT_WRITE_TIMEOUT)")
	countVar(fs, &l.maxConns, "max-conns", "DEPOT_MAX_CONNS", gateway.DefaultMaxConns,
		"most client connections open at once; more wait to be accepted (env DEPOT_MAX_CONNS)")
	rateVar(fs, &l.perIP, "rate-per-ip", "DEPOT_RATE_PER_IP", 0,
		"requests allowed to one client IP: per second (200 or 200/s), per minute (3000/m) or per hour (/h); 0 for no limit (env DEPOT_RATE_PER_IP)")
	rateVar(fs, &l.perKey, "rate-per-key", "DEPOT_RATE_PER_KEY", 0,
		"S3 requests allowed to one access key, per second (1000 or 1000/s), minute (/m) or hour (/h); 0 for no limit (env DEPOT_RATE_PER_KEY)")
	countVar(fs, &l.burst, "rate-burst", "DEPOT_RATE_BURST", 0,
		"requests a client may send at once above its rate; 0: twice the rate (env DEPOT_RATE_BURST)")
	sizeVar(fs, &l.maxObject, "max-object-size", "DEPOT_MAX_OBJECT_SIZE", s3.DefaultMaxObjectSize,
		"largest body of one S3 PutObject or UploadPart, and of one native blob, in bytes or with a unit, e.g. 5GiB (env DEPOT_MAX_OBJECT_SIZE)")
}

func (l *gatewayLimits) apply(c *gateway.Config) {
	c.ReadHeaderTimeout, c.BodyReadTimeout, c.IdleTimeout = l.readHeader, l.bodyRead, l.idle
	c.WriteTimeout, c.MaxConns = l.write, l.maxConns
	c.RateLimit = guard.Config{PerIP: l.perIP, PerKey: l.perKey, PerIPBurst: l.burst, PerKeyBurst: l.burst}
	c.MaxBlobSize, c.S3.MaxObjectSize = l.maxObject, l.maxObject
}
