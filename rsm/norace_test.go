//go:build !race

package rsm_test

const raceDetector = false
