//go:build race

package switching_test

const raceEnabled = true
