// Package chaos holds depot's Jepsen-style chaos suite (chaos_test.go):
// a cluster of separate depot processes on loopback — three nameservers
// in a raft group, eight dataservers in three racks, two gateways — under
// concurrent S3 load while a nemesis kills, pauses, partitions, corrupts,
// fills, removes, adds and drains processes. Every operation is recorded with its outcome (ok,
// failed, unknown) and the history is checked afterwards: acknowledged
// writes stay readable with exactly their bytes until replaced, no read
// returns bytes that were never written, reads and listings see
// acknowledged writes, writes with unknown outcome are all there or not
// at all; after the nemesis stops the cluster must reach full redundancy
// by itself, read every key back, and hold no needle that nothing
// references. The package has no code outside its tests.
//
// The short run (2 minutes) is part of `go test ./...`; it skips under
// the race detector. A long run:
//
//	go test ./internal/chaos -run TestChaos -chaos.duration 30m -timeout 40m -v
//
// Flags: -chaos.seed (replays a run: the seed is printed first),
// -chaos.duration, -chaos.clients, -chaos.maxsize, -chaos.heal (deadline
// for full redundancy), -chaos.faults (inject only these fault kinds, e.g.
// "disk-full,partition-dataserver"), -chaos.keep (keep the processes' logs
// and data; a failed run always keeps them).
package chaos
