package main

import (
	"os"
	"strconv"
	"time"
)

// envDuration returns the duration in environment variable name, or def
// when it is unset or malformed.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// envFloat returns the number in environment variable name, or def when it
// is unset or malformed.
func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return f
	}
	return def
}
