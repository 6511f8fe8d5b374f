// Command lwgkv is the example replicated key-value store of lwgkit,
// spoken to with the Redis protocol (redis-cli, redis-benchmark, any
// Redis client) and HTTP.
//
//	lwgkv [demo]   3 nodes in this process on loopback (RESP 6380-6382, HTTP 8080-8082)
//	lwgkv serve    one node of a multi-process cluster
//	lwgkv status   the cluster as one node sees it
//	lwgkv bench    load a running cluster, print ops/s and latency percentiles
//
// Run `lwgkv <command> -h` for the flags of each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `lwgkv: a replicated key-value store on light-weight groups (lwgkit)

usage:
  lwgkv [demo] [flags]   run a 3-node cluster in this process on loopback
  lwgkv serve  [flags]   run one node of a multi-process cluster
  lwgkv status [flags]   show the cluster as one node sees it
  lwgkv bench  [flags]   load a running cluster and print ops/s and latencies

Run 'lwgkv <command> -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "demo"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "demo":
		err = demo(ctx, args, stdout, stderr)
	case "serve":
		err = serve(ctx, args, stdout, stderr)
	case "status":
		err = status(ctx, args, stdout, stderr)
	case "bench":
		err = bench(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "lwgkv: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "lwgkv %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// errUsage: the flags were wrong; the flag package already said why.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}
