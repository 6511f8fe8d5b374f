//go:build race

package rsm_test

// raceDetector scales the TCP test down under -race, which slows the
// stack about tenfold.
const raceDetector = true
