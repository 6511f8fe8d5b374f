// Package kvexample is the example replicated key-value store of lwgkit,
// served over the Redis protocol and HTTP by kvexample/cmd/lwgkv.
//
// # Data model
//
// Keys and values are byte strings. Commands: GET, SET (with NX or XX),
// DEL, EXISTS, INCR/INCRBY/DECR/DECRBY (64-bit integers, Redis's parsing
// and errors) and MGET. Values are bounded (NodeConfig.MaxValueBytes,
// default 1 MiB). There is no expiry.
//
// # Shards and placement
//
// Keys hash to Shards shards (default 1,024; a "{tag}" in a key hashes only
// the tag, as in Redis Cluster). Each shard is an rsm object, "kv/<shard>",
// whose state machine is a Machine, replicated on Replicas nodes (default
// 3) chosen by rendezvous hashing over the configured nodes: every node
// computes the same placement from the same node list, with no
// coordination. A shard's LWG is created on the HWG of its member set
// ("h/m/1.2.3", switching.ByMembers), so with 5 nodes and 3 replicas the
// 1,024 LWGs share at most 10 HWGs and no HWG carries a node outside its
// LWGs; a switching.Rebalancer runs on every node for anything else.
//
// Placement is over the configured nodes, not the live ones: a failed
// node's shards go on with their other replicas (a majority of each
// shard's replicas must be up), and the node catches up when it returns,
// from its local snapshots and the other replicas. Changing the node set
// is not supported by this example.
//
// # Requests
//
// Writes are proposed to the shard's rsm object and answered once applied
// in its total order; reads (GET, EXISTS, MGET) are linearizable rsm
// Reads. Any node serves any key (no MOVED redirect), so plain clients
// such as redis-cli and redis-benchmark work against any node. A node
// with no ready replica of a key's shard sends the command through group
// composition (package compose, Placement.ComposeTopology: a tree of the
// shards' groups around shard 0's, each link joining two shards that
// share replica nodes, which are its routers; a link shares two nodes
// wherever the placement allows, so no single node's failure cuts a
// shard off): compose.Objects.Call multicasts it in one of this node's
// shard groups, the routers forward it to the target shard's group, and
// every replica there proposes it with rsm's ProposeFrom under the
// request's end-to-end id (origin process, source group, sequence), so
// it is applied once even when a router crashes between delivery and
// forwarding; the replicas send the result back the same way. A request
// without a result after NodeConfig.ComposeAttempt is sent again under
// its first attempt's id (applied once; a read goes through the shard's
// total order too). Only a node that is in no shard group yet (its
// shards still opening) or a shard the topology cannot reach (sharing no
// node with any shard connected to shard 0) falls back to forwarding the
// encoded command to a replica node over RESP (LWGKV.SHARD, live nodes
// first), and so does a read that composition has not answered within
// half its time: a group on the route may have lost its majority while
// the shard kept one (two of shard 0's replicas down stop every route
// through it). A write is never forwarded after composition: it may
// still be applied through the route. Commands over keys of several
// shards run one atomic command per shard.
//
// Errors follow Redis's wording ("ERR wrong number of arguments for 'get'
// command", "ERR unknown command ...", "ERR value is not an integer or out
// of range"). Two prefixes are lwgkv's own: TRYAGAIN (the command was not
// applied; retrying is safe) and UNKNOWN (a write whose outcome is not
// known, such as one in flight when its node failed, or a cross-shard
// write whose result did not come back within the request's time limit).
//
// # Layout
//
// Machine, Command and Result are the state machine and its canonical
// encodings; Placement maps keys to shards and nodes; Store routes
// commands; RESPServer and HTTPServer are the front ends; Node wires them
// to an rsm node started with rsm.Start.
package kvexample
