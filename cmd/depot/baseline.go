package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// baseline is what the machine itself can do, measured in the same run as
// a benchmark so that depot's figures can be given as ratios.
type baseline struct {
	DiskWriteMiBs float64 `json:"disk_write_mib_s"` // sequential write, fdatasync at the end
	DiskReadMiBs  float64 `json:"disk_read_mib_s"`  // sequential read with the file dropped from the page cache
	LoopbackMiBs  float64 `json:"loopback_mib_s"`   // one TCP stream over 127.0.0.1
}

// measureBaseline writes and reads size bytes in dir and streams size
// bytes over loopback.
func measureBaseline(dir string, size int64) (baseline, error) {
	var b baseline
	f, err := os.CreateTemp(dir, "depot-baseline-*")
	if err != nil {
		return b, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return b, err
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return b, err
	}
	b.DiskWriteMiBs = mibs(size, time.Since(start))

	// Drop the file from the page cache so the read comes from the disk.
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return b, err
	}
	start = time.Now()
	n, err := io.CopyBuffer(io.Discard, f, buf)
	if err != nil {
		return b, err
	}
	b.DiskReadMiBs = mibs(n, time.Since(start))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return b, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for sent := int64(0); sent < size; sent += int64(len(buf)) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return b, err
	}
	defer c.Close()
	rbuf := make([]byte, 256<<10)
	start = time.Now()
	n, err = io.CopyBuffer(io.Discard, io.LimitReader(c, size), rbuf)
	if err != nil {
		return b, err
	}
	b.LoopbackMiBs = mibs(n, time.Since(start))
	return b, nil
}

func mibs(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func printBaseline(b baseline, dir string) {
	abs, _ := filepath.Abs(dir)
	fmt.Printf("baseline (%s): disk write %.0f MiB/s, disk read %.0f MiB/s, loopback %.0f MiB/s\n",
		abs, b.DiskWriteMiBs, b.DiskReadMiBs, b.LoopbackMiBs)
}
