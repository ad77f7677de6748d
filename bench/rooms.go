package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
)

// roomsWindow is the rooms scenario's messages in flight: each message makes
// only 2 deliveries, so many must be in flight to keep the node busy.
const roomsWindow = 1024

// rooms measures many small rooms on one node: N connections, connection i
// in rooms r.<i> and r.<i+1 mod N>, so N rooms of exactly 2 members and N
// NATS subscriptions; messages go to a random room. It stresses the
// per-message path (NATS delivery, room lookup, encoding) rather than the
// per-member one. Connections stay under the 20,000-fd limit of one process
// because each joins two rooms.
func rooms(r *run, res *Result) error {
	nats, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	n := r.plan.roomsConns
	res.Params["rooms"] = n
	res.Params["connections"] = n
	res.Params["members_per_room"] = 2
	res.Params["window_msgs"] = roomsWindow
	node, err := r.startNode(nodeOptions{name: "node", nats: nats.url, extra: r.nodeFlags})
	if err != nil {
		return err
	}
	lc, err := r.startLoader("load", loaderOptions{server: node.addr})
	if err != nil {
		return err
	}
	defer lc.quit()
	setup := time.Now()
	if err := lc.dialJoined(proto.Dial{Concurrency: 32, Path: node.wsPath, Ring: n}, n, 2000, 2); err != nil {
		return err
	}
	res.Params["setup"] = time.Since(setup).Round(100 * time.Millisecond).String()
	targets := make([]string, n)
	for i := range targets {
		targets[i] = "r." + strconv.Itoa(i)
	}
	p := proto.Publish{Via: "nats", NATS: nats.url, Prefix: node.prefix, Targets: targets, Random: true,
		PerMsg: 2, Size: 128, Window: roomsWindow, Duration: time.Second}
	if _, err := lc.publish(p); err != nil {
		return err
	}
	p.Duration = r.plan.run
	srv := []*server{node}
	mx, err := r.measure(srv, nats.p.pid(), lc, "max", p)
	if err != nil {
		return err
	}
	half := p
	half.Window, half.Rate, half.Latency = 0, mx.msgRate()/2, true
	hf, err := r.measure(srv, nats.p.pid(), lc, "50 %", half)
	if err != nil {
		return err
	}
	t := res.table(fmt.Sprintf("%d rooms × 2 members on one node, 128 B to a random room over NATS", n), phaseColumns...)
	t.add(mx.row("roomcast")...)
	t.add(hf.row("roomcast")...)
	mx.record(res, "max")
	hf.record(res, "half")
	nt := res.table("NATS server CPU during the phases (it routes every message to the node's per-room subscription)",
		"phase", "NATS CPU", "NATS CPU/message")
	for _, ph := range []*phase{mx, hf} {
		nt.add(ph.label, fmt.Sprintf("%.2f cores", ph.nats/ph.secs), fmtF(ph.nats/float64(ph.pub.Published)*1e6, "µs"))
	}
	res.note("Setup (connect + 2 joins per connection, in chunks of 2,000) took %s.", res.Params["setup"])
	res.note("Here each message is 2 deliveries, so per-message costs dominate: NATS routing, the node's NATS client, room lookup, one JSON encoding and one frame per message.")
	return nil
}
