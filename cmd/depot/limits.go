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
	fs.DurationVar(&l.readHeader, "read-header-timeout", envDuration("DEPOT_READ_HEADER_TIMEOUT", gateway.DefaultReadHeaderTimeout),
		"close connections that take longer to send a request's headers (env DEPOT_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&l.bodyRead, "body-read-timeout", envDuration("DEPOT_BODY_READ_TIMEOUT", gateway.DefaultBodyReadTimeout),
		"fail requests whose body sends nothing for this long (env DEPOT_BODY_READ_TIMEOUT)")
	fs.DurationVar(&l.idle, "idle-timeout", envDuration("DEPOT_IDLE_TIMEOUT", gateway.DefaultIdleTimeout),
		"close kept-alive connections idle this long (env DEPOT_IDLE_TIMEOUT)")
	fs.DurationVar(&l.write, "write-timeout", envDuration("DEPOT_WRITE_TIMEOUT", gateway.DefaultWriteTimeout),
		"close connections whose client takes nothing of a response for this long (env DEPOT_WRITE_TIMEOUT)")
	fs.IntVar(&l.maxConns, "max-conns", int(envFloat("DEPOT_MAX_CONNS", gateway.DefaultMaxConns)),
		"most client connections open at once; more wait to be accepted (env DEPOT_MAX_CONNS)")
	fs.Float64Var(&l.perIP, "rate-per-ip", envFloat("DEPOT_RATE_PER_IP", 0),
		"requests per second allowed to one client IP, 0 for no limit (env DEPOT_RATE_PER_IP)")
	fs.Float64Var(&l.perKey, "rate-per-key", envFloat("DEPOT_RATE_PER_KEY", 0),
		"S3 requests per second allowed to one access key, 0 for no limit (env DEPOT_RATE_PER_KEY)")
	fs.IntVar(&l.burst, "rate-burst", int(envFloat("DEPOT_RATE_BURST", 0)),
		"requests a client may send at once above its rate; 0: twice the rate (env DEPOT_RATE_BURST)")
	fs.Int64Var(&l.maxObject, "max-object-size", int64(envFloat("DEPOT_MAX_OBJECT_SIZE", s3.DefaultMaxObjectSize)),
		"largest body of one S3 PutObject or UploadPart, and of one native blob, in bytes (env DEPOT_MAX_OBJECT_SIZE)")
}

func (l *gatewayLimits) apply(c *gateway.Config) {
	c.ReadHeaderTimeout, c.BodyReadTimeout, c.IdleTimeout = l.readHeader, l.bodyRead, l.idle
	c.WriteTimeout, c.MaxConns = l.write, l.maxConns
	c.RateLimit = guard.Config{PerIP: l.perIP, PerKey: l.perKey, PerIPBurst: l.burst, PerKeyBurst: l.burst}
	c.MaxBlobSize, c.S3.MaxObjectSize = l.maxObject, l.maxObject
}
