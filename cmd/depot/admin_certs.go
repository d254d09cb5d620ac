package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"depot/internal/tlsconf"
)

// runAdminCerts makes a cluster CA and certificates for a test or small
// cluster (tlsconf.WriteCerts).
func runAdminCerts(args []string) error {
	fs := flag.NewFlagSet("admin certs", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the CA and certificates to (must not hold a ca.pem)")
	hosts := fs.String("hosts", "localhost", "comma-separated host names or IP addresses, one node certificate each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: depot admin certs --out DIR [--hosts a,b,c]")
	}
	files, err := tlsconf.WriteCerts(*out, splitComma(*hosts))
	for _, f := range files {
		fmt.Fprintln(os.Stdout, f)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, "keep ca-key.pem offline; give each node ca.pem and its node-<host>.pem and -key.pem (--ca, --cert, --key)")
	return nil
}
