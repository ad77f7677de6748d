package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

// TestScaleOut stands up production's shape on one machine (issue 7): a
// NATS cluster of 3 with the rc-keys bucket replicated 3 times, 4 roomcast
// nodes, one network namespace per process, and clients that only know a
// round-robin TCP load balancer. Keys minted on any node redeem wherever
// the balancer sends the client; every client lands on its expected node,
// sees every other in one room whichever node it is on, and gets every
// publish, from clients on each node, from HTTP and from NATS.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	const room = "scale.room"
	begin := time.Now()
	c := startNetCluster(t, 3, 4, harness.NodeConfig{})
	t.Logf("3 NATS servers and 4 nodes ready in %v", time.Since(begin).Round(time.Millisecond))
	lb := harness.NewProxy(t, c.net.Dial, c.addrs()...)
	nc := c.connectNATS(t)

	t.Run("KeysBucketHas3Replicas", func(t *testing.T) {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(harness.Ctx(t, wait), "KV_rc-keys")
		if err != nil {
			t.Fatalf("stream of the rc-keys bucket: %v", err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("rc-keys: replicas %d, cluster %+v; want 3 replicas on 3 servers", info.Config.Replicas, info.Cluster)
		}
	})

	// Eight clients through the balancer, keys minted on node i%4 while
	// the balancer sends the i-th connection to node i%4 too, shifted by
	// one so no key is redeemed where it was minted.
	const clients = 8
	var ws []*watcher
	perNode := map[string]int{}
	for i := range clients {
		w := newWatcher(fmt.Sprintf("client%d", i), room)
		k := c.nodes[(i+3)%4].MintKey(t, harness.Claims{User: fmt.Sprintf("u%d", i), Allow: []string{"scale.>"}})
		cl, err := client.Dial(harness.Ctx(t, wait), "ws://"+lb.Addr+k.URL, w.options())
		if err != nil {
			t.Fatalf("client %d through the balancer: %v", i, err)
		}
		t.Cleanup(func() { cl.Close() })
		w.c = cl
		ws = append(ws, w)
		if want := c.nodes[i%4].ID; cl.Welcome().Node != want {
			t.Errorf("client %d: welcome.node %q; want %q (round-robin)", i, cl.Welcome().Node, want)
		}
		perNode[cl.Welcome().Node]++
	}
	t.Logf("clients per node through the balancer: %v", perNode)

	ctx := harness.Ctx(t, 2*wait)
	for _, w := range ws {
		if _, err := w.c.Join(ctx, room, map[string]string{"name": w.name}); err != nil {
			t.Fatalf("%s joins on %s: %v", w.name, w.c.Welcome().Node, err)
		}
	}
	all := sessionsOf(ws...)
	t.Logf("sessions: %s", names(ws...))
	took := waitUntil(t, wait, "every client lists every session", func() bool {
		for _, w := range ws {
			if !w.sees(all) {
				return false
			}
		}
		return true
	}, func() string { return describeViews(ws, all) })
	t.Logf("every client lists all %d sessions %v after the last join", len(all), took.Round(time.Millisecond))
	checkPresence(t, ws, all)
	checkFaults(t, ws)

	// One publish from a client on each node, one over HTTP on n3, one
	// plain NATS publish: each reaches all eight clients exactly once.
	for i := range 4 {
		if err := ws[i].c.Publish(ctx, room, "from-"+ws[i].c.Welcome().Node, map[string]int{"i": i}); err != nil {
			t.Fatalf("publish from %s: %v", ws[i].name, err)
		}
	}
	c.nodes[2].Publish(t, room, "from-http", "hi")
	m := nats.NewMsg("rc.room." + room)
	m.Header.Set("Rc-Event", "from-nats")
	m.Data = []byte(`{"svc":true}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	names := []string{"from-n1", "from-n2", "from-n3", "from-n4", "from-http", "from-nats"}
	waitUntil(t, wait, "every publish reaches every client", func() bool {
		for _, w := range ws {
			for _, e := range names {
				if w.eventCount(e) < 1 {
					return false
				}
			}
		}
		return true
	}, func() string { return describePublishes(ws, names) })
	for _, w := range ws {
		for _, e := range names {
			if n := w.eventCount(e); n != 1 {
				t.Errorf("%s got %q %d times; want once", w.name, e, n)
			}
		}
	}
	t.Logf("scale-out checks done %v after start", time.Since(begin).Round(time.Millisecond))
}

func describePublishes(ws []*watcher, names []string) string {
	var s []string
	for _, w := range ws {
		got := ""
		for _, e := range names {
			got += fmt.Sprintf(" %s=%d", e, w.eventCount(e))
		}
		s = append(s, fmt.Sprintf("%s on %s:%s", w.name, w.c.Welcome().Node, got))
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}
