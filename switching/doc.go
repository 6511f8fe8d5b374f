// Package switching will decide where every light-weight group lives:
// policies as pure functions from a cluster snapshot to actions, and the
// rebalancing loop that applies them.
//
// Not built yet: this package holds no code.
package switching
