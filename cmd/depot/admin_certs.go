package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"depot/internal/tlsconf"
)

// runAdminCerts makes a cluster CA and certificates for a test or small
// cluster (tlsconf.WriteCerts).
func runAdminCerts(args []string) error {
	fs := flag.NewFlagSet("admin certs", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the CA and certificates to (must not hold a ca.pem)")
	hosts := fs.String("hosts", "localhost", "comma-separated host names or IP addresses, one node certificate each; NAME=SAN+SAN makes node-NAME.pem for those SANs (e.g. dataserver=*.depot-dataserver.depot.svc)")
	ifMissing := fs.Bool("if-missing", false, "do nothing when --out already holds a ca.pem (an init step run at every start)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: depot admin certs --out DIR [--hosts a,b,c] [--if-missing]")
	}
	if _, err := os.Stat(filepath.Join(*out, "ca.pem")); err == nil && *ifMissing {
		fmt.Fprintf(os.Stdout, "%s already holds a CA; nothing to do\n", *out)
		return nil
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
