//go:build linux

package dataserver

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendRange writes n bytes of f from offset off to c. On a TCP connection
// it uses sendfile(2): the bytes go from the page cache to the socket
// without a copy through this process, and f's own offset is left alone,
// so any number of runs may send from one file at once. c's write deadline
// applies.
func sendRange(c net.Conn, f *os.File, off, n int64) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return copyRange(c, f, off, n)
	}
	src, err := f.SyscallConn()
	if err != nil {
		return err
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := src.Control(func(in uintptr) {
		werr := dst.Write(func(out uintptr) bool {
			for n > 0 {
				w, err := unix.Sendfile(int(out), int(in), &off, int(min(n, 1<<30)))
				if w > 0 {
					n -= int64(w)
				}
				switch {
				case err == unix.EAGAIN:
					return false // wait until the socket takes more
				case err == unix.EINTR:
				case err != nil:
					serr = &os.SyscallError{Syscall: "sendfile", Err: err}
					return true
				case w == 0:
					serr = io.ErrUnexpectedEOF // the file is shorter than its index says
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr != nil {
		return serr
	}
	return cerr
}
