// Package testproc holds what tests that start processes of their own
// (cluster nodes, crash loops) share.
package testproc
