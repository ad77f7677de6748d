//go:build race

package room

// raceEnabled reports whether the race detector is on; a few timing tests
// that make NATS drop messages on purpose behave differently under it.
const raceEnabled = true
