package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lwgkit/lwgkit/kvexample"
)

func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lwgkv status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("http", "127.0.0.1:8080", "HTTP address of a node")
	raw := fs.Bool("json", false, "print the JSON as the node sent it")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := *addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w\n  is a node serving HTTP on %s? (see -http)", err, *addr)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *raw {
		_, err := stdout.Write(body)
		return err
	}
	var st kvexample.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decoding status: %w", err)
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st kvexample.Status) {
	fmt.Fprintf(w, "cluster %q as node %d (%s) sees it\n\n", st.Cluster, st.Node, st.Process)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tPROCESS\tRESP\tHTTP\tCLUSTER")
	for _, n := range st.Nodes {
		state := "down"
		if n.Live {
			state = "live"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", n.ID, state, dash(n.Process), dash(n.RESP), dash(n.HTTP), dash(n.Cluster))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nshards: %d, %d replicas each; %d on this node, %d ready\n\n", st.Shards.Total, st.Shards.Replicas, st.Shards.Local, st.Shards.Ready)
	fmt.Fprintln(tw, "HWG (carrier)\tVIEW\tMEMBERS\tLWGS OF THIS NODE")
	for _, h := range st.HWGs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", h.ID, h.ViewID, strings.Join(h.Members, " "), h.LWGs)
	}
	tw.Flush()
	if r := st.Rebalancer; r != nil {
		settled := "not settled"
		if r.Settled {
			settled = "settled: every LWG on the HWG of exactly its members"
		}
		fmt.Fprintf(w, "\nrebalancer: %d rounds, %d switches started, %d completed, %d failed, %d in flight; %s\n",
			r.Rounds, r.Started, r.Completed, r.Failed, r.InFlight, settled)
	}
	if len(st.Switches) == 0 {
		fmt.Fprintln(w, "switches in progress: none")
	} else {
		fmt.Fprintf(w, "switches in progress:\n  %s\n", strings.Join(st.Switches, "\n  "))
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
