//go:build race

package chaos

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
