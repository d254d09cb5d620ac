// Package tlsconf builds every tls.Config that depot uses, from files named
// in a config struct, so that the gateway's public listener, the internal
// servers (nameserver, dataserver) and the internal clients (gateway,
// repair workers, nameserver background work, nsclient, the admin CLI) are
// set up in one place.
//
// Two kinds of setup exist:
//
//   - Cert: a certificate and key pair read from PEM files and swapped in
//     place by Reload. Servers hand it out through tls.Config.GetCertificate
//     and clients through GetClientCertificate, so a reload reaches every new
//     handshake while connections already open keep theirs. A reload that
//     fails (missing file, key not matching the certificate) keeps the old
//     pair and returns the error.
//   - Cluster: mutual TLS for internal traffic, made of a Cert and the
//     cluster CA (PEM, one or more certificates). Its server side verifies
//     client certificates against the CA, and RequireClientCert refuses
//     requests without one on every route but health checks (so probes
//     that hold no certificate still work); its client side presents the
//     node's certificate and verifies the server's against the CA and the
//     host it dialled. A nil *Cluster is plain HTTP: every method of Cluster
//     works on nil and answers "http", a nil tls.Config and a plain
//     transport, so callers need no branches.
//
// GenerateCA and IssueCert make an ECDSA P-256 CA and certificates signed by
// it, for tests and for `depot admin certs`. Files written by WriteCerts:
//
//	ca.pem, ca-key.pem         the cluster CA (keep ca-key.pem offline)
//	node-<host>.pem, -key.pem  one per host: server and client use, SANs
//	                           <host>, localhost, 127.0.0.1 and ::1; a host
//	                           given as <name>=<san>+<san> gets those SANs
//	                           (wildcards allowed) under node-<name>.pem
//	admin.pem, admin-key.pem   client use only, for the admin CLI
//
// Keys are PKCS#8 PEM ("PRIVATE KEY") written with mode 0600; certificates
// are "CERTIFICATE" PEM blocks.
package tlsconf
