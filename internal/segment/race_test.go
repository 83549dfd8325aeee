//go:build race

package segment

// raceEnabled is true under -race, which makes the large tests ~20× slower,
// so they scale down.
const raceEnabled = true
