// Package deploy holds what operators run depot with, and the tests that
// prove those files work:
//
//	Dockerfile, build.sh, Makefile   a FROM-scratch image around a static depot binary
//	compose.yaml                     a cluster on one Docker engine (3 nameservers, 6+1 dataservers, 2 gateways), mutual TLS from a certs service
//	k8s/                             Kubernetes manifests (StatefulSets, Deployment, Services, PDB, NetworkPolicies), mutual TLS from the depot-tls Secret
//	systemd/                         one hardened unit per role
//	README.md                        the operator's guide: sizing, growth, disks, upgrades, backups
//
// The package has no code of its own. Its tests decode every Kubernetes
// manifest strictly into the typed API objects (k8s_test.go), check the
// systemd units (systemd_test.go) and bring the compose cluster up on the
// machine's Docker engine and break it in the ways operators will
// (compose_test.go). The compose test is skipped when no Docker engine
// answers, except under CI (CI set), where it must run.
package deploy
