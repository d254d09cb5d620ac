// Package chaos holds depot's Jepsen-style chaos suite (chaos_test.go):
// a cluster of separate depot processes on loopback — three nameservers
// in a raft group, eight dataservers in three racks, two gateways — under
// concurrent S3 load while a nemesis kills, pauses, partitions, corrupts,
// fills, removes, adds and drains processes, and backs the nameserver up
// and restores it. Every operation is recorded with its outcome (ok,
// failed, unknown) and the history is checked afterwards: acknowledged
// writes stay readable with exactly their bytes until replaced, no read
// returns bytes that were never written, reads and listings see
// acknowledged writes, writes with unknown outcome are all there or not
// at all; after the nemesis stops the cluster must reach full redundancy
// by itself, read every key back, and hold no needle that nothing
// references. The package has no code outside its tests.
//
// Backups and restores. Fault kind "backup" fetches GET /backup (the
// leader serves it) into <run dir>/backups and notes the request's
// interval [B0, B1]; "restore" posts the newest backup to POST /restore
// when it is younger than 30 s (counted from B0), at most 3 times a run,
// and records a restore operation over its interval [R0, R1]. The
// nameservers run with --delete-grace 60s, so every restore is whole: a
// segment released after the backup is still stored when the restore
// brings its object back. The contract checked: a restore rewinds the
// namespace to the backup, and nothing else. The checker takes a restore
// as a write of every key during [R0, R1] whose possible values are every
// value a read of that key during [B0, B1] may return, absence included
// (checker_test.go); so a restore may undo acknowledged writes only back
// to what the backup may hold, and writes acknowledged after it must be
// seen. The end checks are the same: full redundancy (placement is not
// rewound), every key read back, and no unreferenced needle (the orphan
// sweep reclaims the segments of writes the restore undid).
//
// The short run (2 minutes) is part of `go test ./...`; it skips under
// the race detector. A long run:
//
//	go test ./internal/chaos -run TestChaos -chaos.duration 30m -timeout 40m -v
//
// Flags: -chaos.seed (replays a run: the seed is printed first),
// -chaos.duration, -chaos.clients, -chaos.maxsize, -chaos.heal (deadline
// for full redundancy), -chaos.faults (inject only these fault kinds, e.g.
// "disk-full,partition-dataserver"; the kinds are in faultKinds:
// kill-dataservers, pause-dataserver, kill-ns-leader, kill-ns-follower,
// pause-ns-leader, kill-gateway, partition-dataserver, disk-full,
// bitflip, truncate, remove-dataserver, add-dataserver,
// drain-dataserver, backup, restore), -chaos.keep (keep the processes' logs
// and data; a failed run always keeps them).
package chaos
