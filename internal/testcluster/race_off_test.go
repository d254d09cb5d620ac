//go:build !race

package testcluster_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
