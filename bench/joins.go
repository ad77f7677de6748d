package main

import (
	"fmt"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
)

// joins measures N sessions joining one room on one node, twice on fresh
// nodes: all at once (every connection sends its join right after the
// upgrade, 64 handshakes in flight) and in chunks of 1,000 that each wait for
// their acks. It shows how presence traffic grows with a burst of joins into
// a big room (bench/README.md, "Findings"). Not part of "all": the burst
// variant takes tens of seconds.
func joins(r *run, res *Result) error {
	nats, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	n := r.plan.fanoutMembers
	res.Params["members"] = n
	t := res.table(fmt.Sprintf("%d sessions join one room on one node", n),
		"how", "time to last ack", "frames received (all clients)", "bytes received", "frames per join", "server CPU")
	for _, burst := range []bool{true, false} {
		name := "chunked"
		if burst {
			name = "burst"
		}
		node, err := r.startNode(nodeOptions{name: "node-" + name, nats: nats.url, extra: r.nodeFlags})
		if err != nil {
			return err
		}
		lc, err := r.startLoader("load-"+name, loaderOptions{server: node.addr})
		if err != nil {
			return err
		}
		before := node.sample()
		start := time.Now()
		d := proto.Dial{Concurrency: 64, Path: node.wsPath, Room: "bench.joins"}
		if burst {
			err = lc.dialJoined(d, n, n, 1)
		} else {
			err = lc.dialJoined(d, n, joinChunk, 1)
		}
		took := time.Since(start)
		if err != nil {
			return err
		}
		// Let queued presence output drain before counting it.
		time.Sleep(2 * time.Second)
		after := node.sample()
		reply, err := lc.call(proto.Command{Cmd: "stats"}, 10*time.Second)
		if err != nil {
			return err
		}
		st := reply.Stats
		label := "all at once"
		if !burst {
			label = fmt.Sprintf("chunks of %d, each waiting for its acks", joinChunk)
		}
		t.add(label, fmtDur(took), fmt.Sprint(st.Frames), fmtBytes(float64(st.Bytes)),
			fmt.Sprintf("%.0f", float64(st.Frames)/float64(n)), fmt.Sprintf("%.1f s", diff(before, after).cpu))
		res.Metrics[name+"_seconds"] = took.Seconds()
		res.Metrics[name+"_frames"] = float64(st.Frames)
		lc.quit()
		node.p.stop(5 * time.Second)
	}
	res.note("Presence turns count-only above 1,000 members (presence.DefaultCountOnlyAbove); below it every join is announced to every member, so joining in order costs about 1,000²/2 session:connected frames in total whatever N is.")
	return nil
}
