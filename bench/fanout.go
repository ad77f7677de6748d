package main

import (
	"fmt"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
)

// Fanout targets and knobs.
const (
	fanoutGoal = 1e6 // deliveries/s on 2 cores (issue 8)
	fanoutRoom = "bench.fanout"
	// fanoutWindow is how many messages the publisher keeps in flight in
	// the max-throughput phases: enough that every connection has frames
	// queued (so a server can batch), far below every server's queue bound
	// (roomcast 1 MiB ≈ 5,000 frames, the baseline 256 frames).
	fanoutWindow = 32
	joinChunk    = 1000
)

// fanout measures one room whose members all sit on one server, messages
// published over NATS: the max delivery rate (closed loop), latency at 50 %
// of it (open loop), the cost of 1 KiB messages with and without
// permessage-deflate (issue 13), then the same load against the peers.
func fanout(r *run, res *Result) error {
	nats, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	members := r.plan.fanoutMembers
	res.Params["members"] = members
	res.Params["window_msgs"] = fanoutWindow
	res.Params["phase"] = r.plan.run.String()
	res.Params["nats"] = "external bench/natsserver, shared by every server"

	t := res.table("Fan-out: one room, all members on one server, published over NATS "+
		"(max = closed loop with "+fmt.Sprint(fanoutWindow)+" messages in flight; 50 % = open loop at half the max rate)", phaseColumns...)

	// roomcast, plain connections.
	node, err := r.startNode(nodeOptions{name: "node", nats: nats.url, extra: r.nodeFlags})
	if err != nil {
		return err
	}
	srv := []*server{node}
	lc, err := r.startLoader("load", loaderOptions{server: node.addr})
	if err != nil {
		return err
	}
	if err := lc.dialJoined(proto.Dial{Concurrency: 32, Path: node.wsPath, Room: fanoutRoom}, members, joinChunk, 1); err != nil {
		return err
	}
	pub := func(size int) proto.Publish {
		return proto.Publish{Via: "nats", NATS: nats.url, Prefix: node.prefix, Targets: []string{fanoutRoom},
			PerMsg: members, Size: size, Window: fanoutWindow, Duration: r.plan.run}
	}
	warm := pub(128)
	warm.Duration = time.Second
	if _, err := lc.publish(warm); err != nil {
		return err
	}
	maxPh, err := r.measure(srv, nats.p.pid(), lc, "max", pub(128))
	if err != nil {
		return err
	}
	t.add(maxPh.row("roomcast")...)
	maxPh.record(res, "roomcast_max")

	half := pub(128)
	half.Window, half.Rate, half.Latency = 0, maxPh.rate()/2/float64(members), true
	halfPh, err := r.measure(srv, nats.p.pid(), lc, "50 %", half)
	if err != nil {
		return err
	}
	t.add(halfPh.row("roomcast")...)
	halfPh.record(res, "roomcast_half")

	plain1k, err := r.measure(srv, nats.p.pid(), lc, "max, deflate not offered", pub(1024))
	if err != nil {
		return err
	}
	t.add(plain1k.row("roomcast")...)
	plain1k.record(res, "roomcast_1k_plain")
	lc.quit()

	// roomcast, clients offering permessage-deflate (issue 13 item 4).
	lz, err := r.startLoader("load-deflate", loaderOptions{server: node.addr, deflate: true})
	if err != nil {
		return err
	}
	if err := lz.dialJoined(proto.Dial{Concurrency: 32, Path: node.wsPath, Room: fanoutRoom}, members, joinChunk, 1); err != nil {
		return err
	}
	z1k, err := r.measure(srv, nats.p.pid(), lz, "max, deflate", pub(1024))
	if err != nil {
		return err
	}
	t.add(z1k.row("roomcast")...)
	z1k.record(res, "roomcast_1k_deflate")
	z128, err := r.measure(srv, nats.p.pid(), lz, "max, deflate (below min size)", pub(128))
	if err != nil {
		return err
	}
	t.add(z128.row("roomcast")...)
	z128.record(res, "roomcast_128_deflate")
	lz.quit()
	node.p.stop(5 * time.Second)

	zt := res.table("Compression (issue 13): 1 KiB chat-like JSON, same room and members",
		"", "wire B/delivery", "server CPU/delivery", "deliveries/s")
	zt.add("deflate not offered", fmtF(plain1k.perDelivery(float64(plain1k.pub.Stats.Bytes)), "B"),
		fmtF(plain1k.perDelivery(plain1k.cpu)*1e6, "µs"), fmtRate(plain1k.rate(), ""))
	zt.add("permessage-deflate", fmtF(z1k.perDelivery(float64(z1k.pub.Stats.Bytes)), "B"),
		fmtF(z1k.perDelivery(z1k.cpu)*1e6, "µs"), fmtRate(z1k.rate(), ""))
	zt.add("ratio (deflate ÷ plain)", fmtRatio(z1k.perDelivery(float64(z1k.pub.Stats.Bytes)), plain1k.perDelivery(float64(plain1k.pub.Stats.Bytes))),
		fmtRatio(z1k.perDelivery(z1k.cpu), plain1k.perDelivery(plain1k.cpu)), fmtRatio(z1k.rate(), plain1k.rate()))

	// Peers, same NATS, same load.
	peerMax := map[string]*phase{}
	for _, kind := range []string{"baseline", "centrifugo"} {
		if !r.peers[kind] {
			continue
		}
		mx, hf, err := r.fanoutPeer(kind, nats, members)
		if err != nil {
			res.note("%s skipped: %v", kind, err)
			continue
		}
		t.add(mx.row(kind)...)
		mx.record(res, kind+"_max")
		if hf != nil {
			t.add(hf.row(kind)...)
			hf.record(res, kind+"_half")
		}
		peerMax[kind] = mx
	}
	if len(peerMax) > 0 {
		ct := res.table("Side by side, max phase (ratios: roomcast ÷ peer; above 1 favours roomcast)",
			"peer", "deliveries/s ratio", "deliveries per CPU-s ratio", "writes/delivery (peer)", "p99 at 50 % (peer)")
		for _, kind := range []string{"baseline", "centrifugo"} {
			mx := peerMax[kind]
			if mx == nil {
				continue
			}
			p99 := "–"
			if v, ok := res.Metrics[kind+"_half_p99_ms"]; ok {
				p99 = fmtDur(time.Duration(v * 1e6))
			}
			ct.add(kind, fmtRatio(maxPh.rate(), mx.rate()),
				fmtRatio(float64(maxPh.pub.Delivered)/maxPh.cpu, float64(mx.pub.Delivered)/mx.cpu),
				fmt.Sprintf("%.3f", mx.writesPerDelivery()), p99)
		}
	}

	rate := maxPh.rate()
	perCPU := res.Metrics["roomcast_max_deliveries_per_cpu_s"]
	res.target("fan-out deliveries/s (1 room × "+fmt.Sprint(members)+", 128 B)", "≥ 1 M/s on 2 cores",
		fmtRate(rate, ""), rate >= fanoutGoal, false)
	res.target("fan-out capacity per node CPU-second (×2 cores = what 2 idle cores would give)", "≥ 500 k per CPU-s",
		fmtRate(perCPU, ""), perCPU >= fanoutGoal/2, false)
	res.target("writes batched under load", "< 1 write per delivery", fmt.Sprintf("%.3f", maxPh.writesPerDelivery()),
		maxPh.writesPerDelivery() < 0.5, false)
	lat := halfPh.latency()
	res.Params["latency_rate_msgs_per_s"] = half.Rate
	res.note("Latency is publish (NATS client in the load process) → receive (same process, same clock), for every delivery of the 50 %% phase: %d samples.", lat.N)
	res.note("CPU is the server process only (user+system from /proc, kernel TCP work included); the load client and NATS run on the same 2 cores. deliveries per CPU-s is the capacity measure least disturbed by other tenants of the machine (load average %s at the start).", res.Env.LoadAvg)
	res.note("writes/delivery counts write and writev syscalls of the server (perf stat on the syscall tracepoints; /proc/<pid>/io syscw if perf is missing), NATS writes included.")
	res.note("allocs/delivery is go_memstats_mallocs_total growth over the phase ÷ deliveries: every allocation of the process, per-message work included.")
	return nil
}

// fanoutPeer runs the max and 50 % phases against a peer server.
func (r *run) fanoutPeer(kind string, nats *natsProc, members int) (mx, hf *phase, err error) {
	var s *server
	protocol := proto.Roomcast
	acks := 1
	switch kind {
	case "baseline":
		s, err = r.startBaseline(nats.url)
	case "centrifugo":
		s, err = r.startCentrifugo(nats.url)
		protocol = proto.Centrifugo
	}
	if err != nil {
		return nil, nil, err
	}
	defer s.p.stop(5 * time.Second)
	lc, err := r.startLoader("load-"+kind, loaderOptions{server: s.addr, protocol: protocol})
	if err != nil {
		return nil, nil, err
	}
	defer lc.quit()
	if err := lc.dialJoined(proto.Dial{Concurrency: 32, Path: s.wsPath, Room: fanoutRoom, Protocol: protocol}, members, joinChunk, acks); err != nil {
		return nil, nil, err
	}
	p := proto.Publish{Via: "nats", NATS: nats.url, Prefix: s.prefix, Targets: []string{fanoutRoom},
		PerMsg: members, Size: 128, Window: fanoutWindow, Duration: time.Second}
	if _, err := lc.publish(p); err != nil {
		return nil, nil, err
	}
	p.Duration = r.plan.run
	mx, err = r.measure([]*server{s}, nats.p.pid(), lc, "max", p)
	if err != nil {
		return nil, nil, err
	}
	p.Window, p.Rate, p.Latency = 0, mx.rate()/2/float64(members), true
	hf, err = r.measure([]*server{s}, nats.p.pid(), lc, "50 %", p)
	if err != nil {
		return mx, nil, nil
	}
	return mx, hf, nil
}
