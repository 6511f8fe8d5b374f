// Package kvexample will be the example replicated key-value store built on
// lwgkit, served over the Redis protocol by kvexample/cmd/lwgkv.
//
// Not built yet: this package holds no code.
package kvexample
