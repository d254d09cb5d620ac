//go:build !linux

package dataserver

import (
	"net"
	"os"
)

// sendRange writes n bytes of f from offset off to c.
func sendRange(c net.Conn, f *os.File, off, n int64) error {
	return copyRange(c, f, off, n)
}
