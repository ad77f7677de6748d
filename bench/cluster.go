package main

import (
	"fmt"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
)

const (
	clusterRoom   = "bench.cluster"
	clusterNodes  = 3
	clusterWindow = 16
	// clusterPublishers are the sessions that publish, all on the first
	// node, so deliveries on the other two nodes are cross-node.
	clusterPublishers = 8
)

// cluster runs 3 nodes on one NATS with one room whose members are spread
// evenly over them; clients publish through the first node (the roomcast
// client `publish`), so a message goes client → node 1 → NATS → every node →
// members. Latency is kept apart for members on the publishing node and on
// the others.
func cluster(r *run, res *Result) error {
	nats, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	per := r.plan.clusterPerNode
	res.Params["nodes"] = clusterNodes
	res.Params["members_per_node"] = per
	res.Params["publishers"] = fmt.Sprintf("%d sessions on node 1", clusterPublishers)
	res.Params["window_msgs"] = clusterWindow
	var nodes []*server
	for i := range clusterNodes {
		// The publishers' per-session rate limit (default 50/s) would cap
		// the run, not the node: raise it for this scenario.
		n, err := r.startNode(nodeOptions{name: fmt.Sprintf("node%d", i+1), nats: nats.url,
			extra: append([]string{"--rate-limit", "100000", "--rate-burst", "100000"}, r.nodeFlags...)})
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	lc, err := r.startLoader("load", loaderOptions{server: nodes[0].addr})
	if err != nil {
		return err
	}
	defer lc.quit()
	for i, n := range nodes {
		if err := lc.dialJoined(proto.Dial{Concurrency: 32, Server: n.addr, Path: n.wsPath, Room: clusterRoom, Group: i}, per, joinChunk, 1); err != nil {
			return err
		}
	}
	pubs := make([]int, clusterPublishers)
	for i := range pubs {
		pubs[i] = i // the first connections dialed: on node 1
	}
	members := per * clusterNodes
	p := proto.Publish{Via: "ws", Targets: []string{clusterRoom}, PubConns: pubs, PerMsg: members, Size: 128,
		Window: clusterWindow, Duration: time.Second}
	if _, err := lc.publish(p); err != nil {
		return err
	}
	p.Duration = r.plan.run
	mx, err := r.measure(nodes, nats.p.pid(), lc, "max", p)
	if err != nil {
		return err
	}
	half := p
	half.Window, half.Rate, half.Latency = 0, mx.msgRate()/2, true
	hf, err := r.measure(nodes, nats.p.pid(), lc, "50 %", half)
	if err != nil {
		return err
	}
	t := res.table(fmt.Sprintf("%d nodes on one NATS, one room of %d members (%d per node), clients publish via node 1", clusterNodes, members, per), phaseColumns...)
	t.add(mx.row("roomcast ×3")...)
	t.add(hf.row("roomcast ×3")...)
	mx.record(res, "max")
	hf.record(res, "half")
	same, cross := hf.latency(0), hf.latency(1, 2)
	lt := res.table("Latency at 50 %: publishing client → member, by where the member is", "members", "deliveries", "p50", "p90", "p99", "max")
	lt.add("on node 1 (same node as the publisher)", fmt.Sprint(same.N), fmtDur(same.P50), fmtDur(same.P90), fmtDur(same.P99), fmtDur(same.Max))
	lt.add("on nodes 2 and 3 (cross-node)", fmt.Sprint(cross.N), fmtDur(cross.P50), fmtDur(cross.P90), fmtDur(cross.P99), fmtDur(cross.Max))
	res.Metrics["half_same_node_p99_ms"] = float64(same.P99) / 1e6
	res.Metrics["half_cross_node_p50_ms"] = float64(cross.P50) / 1e6
	res.Metrics["half_cross_node_p99_ms"] = float64(cross.P99) / 1e6
	res.note("Three nodes, NATS and the load client share 2 cores; server CPU is the sum over the three nodes.")
	return nil
}
