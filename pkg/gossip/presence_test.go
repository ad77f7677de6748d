package gossip

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/presence"
)

// Trackers and gossip together, on one real NATS and real memberlists on
// loopback: what a node runs (pkg/node wires the two the same way).

// lefts is a presence.Listener that records when each member left.
type lefts struct {
	mu   sync.Mutex
	left map[string]time.Time
	log  []string
}

func (l *lefts) Joined(room string, m presence.Member, n int) { l.add("+" + m.Session) }
func (l *lefts) Left(room string, m presence.Member, n int) {
	l.mu.Lock()
	if l.left == nil {
		l.left = map[string]time.Time{}
	}
	l.left[m.Session] = time.Now()
	l.mu.Unlock()
	l.add("-" + m.Session)
}
func (l *lefts) Updated(string, presence.Member, int) {}
func (l *lefts) Counted(string, int)                  {}
func (l *lefts) Reset(string, int, bool)              {}

func (l *lefts) add(s string) {
	l.mu.Lock()
	l.log = append(l.log, s)
	l.mu.Unlock()
}

func (l *lefts) leftAt(session string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.left[session]
	return at, ok
}

type presenceNode struct {
	name string
	tr   *presence.Tracker
	c    *Cluster
	nc   *nats.Conn
	ev   *lefts
}

type nodeSpec struct {
	name       string
	heartbeats bool          // presence's NATS heartbeats on (production: yes)
	probe      time.Duration // 0: production timing
	natsURL    string        // "": the server's own URL
	seeds      []string
	wrap       **partitionable
}

func startPresenceNode(t *testing.T, srv *server.Server, s nodeSpec) *presenceNode {
	t.Helper()
	url := s.natsURL
	if url == "" {
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	po := presence.Options{Node: s.name, NC: nc}
	if !s.heartbeats {
		po.Heartbeat = -1
	}
	tr, err := presence.New(po)
	if err != nil {
		t.Fatal(err)
	}
	ev := &lefts{}
	tr.Listen(ev)
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	o := Options{Node: s.name, Incarnation: tr.Incarnation(), Bind: "127.0.0.1:0", Join: s.seeds,
		Listener: tr, ProbeInterval: s.probe, RejoinInterval: s.probe}
	if s.wrap != nil {
		withCut(s.wrap)(&o)
	}
	c, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return &presenceNode{name: s.name, tr: tr, c: c, nc: nc, ev: ev}
}

// presenceCluster starts three nodes; n3's NATS and gossip go through
// what natsURL and wrap say. Every node gets members n1a, n2a, n3a, n3b in
// room r.
func presenceCluster(t *testing.T, srv *server.Server, hb bool, probe time.Duration, natsURL3 string, wrap3 **partitionable) []*presenceNode {
	t.Helper()
	n1 := startPresenceNode(t, srv, nodeSpec{name: "n1", heartbeats: hb, probe: probe})
	n2 := startPresenceNode(t, srv, nodeSpec{name: "n2", heartbeats: hb, probe: probe, seeds: []string{n1.c.Addr()}})
	n3 := startPresenceNode(t, srv, nodeSpec{name: "n3", heartbeats: hb, probe: probe, seeds: []string{n1.c.Addr()}, natsURL: natsURL3, wrap: wrap3})
	nodes := []*presenceNode{n1, n2, n3}
	ctx := context.Background()
	for _, j := range []struct {
		n *presenceNode
		s string
	}{{n1, "n1a"}, {n2, "n2a"}, {n3, "n3a"}, {n3, "n3b"}} {
		if err := j.n.tr.Join(ctx, "r", presence.Member{Session: j.s, User: "u" + j.s}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitRoom(t, n, "n1a,n2a,n3a,n3b")
		bustest.Eventually(t, 10*time.Second, func() bool { return len(n.c.Members()) == 3 }, "%s: gossip has %d members", n.name, len(n.c.Members()))
	}
	return nodes
}

func roomIDs(n *presenceNode) string {
	var s []string
	for _, m := range n.tr.Members("r") {
		s = append(s, m.Session)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func waitRoom(t *testing.T, n *presenceNode, want string) {
	t.Helper()
	bustest.Eventually(t, 15*time.Second, func() bool { return roomIDs(n) == want },
		"%s: members %q, want %q", n.name, roomIDs(n), want)
}

// A node killed without a word (its NATS connection and gossip just stop,
// as with SIGKILL) has its members reported Left on every other node
// within 5 s, at production timing: by gossip alone, and by gossip and
// heartbeats together (what a node with --gossip-bind runs).
func TestKilledNodeLeavesEveryView(t *testing.T) {
	for _, tc := range []struct {
		name string
		hb   bool
	}{{"gossip only", false}, {"gossip and heartbeats", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nodes := presenceCluster(t, bustest.RunServer(t), tc.hb, 0, "", nil)
			dead := nodes[2]
			killed := time.Now()
			dead.nc.Close()
			_ = dead.c.Shutdown()
			var slowest time.Duration
			for _, n := range nodes[:2] {
				waitRoom(t, n, "n1a,n2a")
				for _, s := range []string{"n3a", "n3b"} {
					at, ok := n.ev.leftAt(s)
					if !ok {
						t.Fatalf("%s: %s left without a Left call", n.name, s)
					}
					slowest = max(slowest, at.Sub(killed))
				}
			}
			t.Logf("%s: a killed node's members were reported Left on both other nodes within %v", tc.name, slowest.Round(time.Millisecond))
			if slowest > 5*time.Second {
				t.Errorf("%s: took %v, over the 5 s goal", tc.name, slowest)
			}
		})
	}
}

// A graceful gossip leave removes the node's members at once, even when no
// presence bye reached anyone (here its NATS connection is gone first).
func TestGossipLeaveDropsAtOnce(t *testing.T) {
	nodes := presenceCluster(t, bustest.RunServer(t), false, 0, "", nil)
	n3 := nodes[2]
	n3.nc.Close()
	start := time.Now()
	if err := n3.c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		waitRoom(t, n, "n1a,n2a")
	}
	took := time.Since(start)
	t.Logf("a gossip leave emptied the views in %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("leave took %v", took)
	}
}

// With gossip as the only liveness (heartbeats off), a node cut off from
// both NATS and gossip is dropped, and after the heal memberlist merges
// again (rejoin loop), NodeAlive revives it, its digests are asked for, and
// every view converges with no duplicates. In "quiet" nothing changes
// during the cut, so only that path (not late deltas, nor the 5 s digests)
// can bring the members back in time.
func TestGossipHealResyncs(t *testing.T) {
	for _, busy := range []bool{true, false} {
		name := map[bool]string{true: "busy", false: "quiet"}[busy]
		t.Run(name, func(t *testing.T) { testGossipHealResyncs(t, busy) })
	}
}

func testGossipHealResyncs(t *testing.T, busy bool) {
	srv := bustest.RunServer(t)
	px := bustest.NewProxy(t, srv.Addr().String())
	var cut *partitionable
	nodes := presenceCluster(t, srv, false, fast, px.URL(), &cut)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	px.Block()
	cut.cut.Store(true)
	waitRoom(t, n1, "n1a,n2a")
	waitRoom(t, n2, "n1a,n2a")
	waitRoom(t, n3, "n3a,n3b") // gossip declared the others dead on n3 too
	want := "n1a,n2a,n3a,n3b"
	if busy {
		if err := n3.tr.Join(context.Background(), "r", presence.Member{Session: "n3c"}); err != nil {
			t.Fatal(err)
		}
		n1.tr.Leave("r", "n1a")
		if err := n1.tr.Join(context.Background(), "r", presence.Member{Session: "n1b"}); err != nil {
			t.Fatal(err)
		}
		want = "n1b,n2a,n3a,n3b,n3c"
	}

	healed := time.Now()
	cut.cut.Store(false)
	px.Release()
	for _, n := range nodes {
		waitRoom(t, n, want)
		if c := n.tr.Count("r"); c != len(strings.Split(want, ",")) {
			t.Errorf("%s: count %d: duplicates", n.name, c)
		}
	}
	took := time.Since(healed)
	t.Logf("views converged %v after the heal", took.Round(time.Millisecond))
	if !busy && took > 3*time.Second {
		t.Errorf("converged after %v: the periodic digests did it, not the heal", took)
	}
}
