package presence

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/metrics/metricstest"
)

// fastBeat makes heartbeats 10 times faster than in production, so that a
// dead node is dropped after 300 ms of silence.
func fastBeat(o *Options) { o.Heartbeat = 100 * time.Millisecond }

func (e *events) has(prefix string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.got, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func mustJoin(t *testing.T, tr testTracker, room string, sessions ...string) {
	t.Helper()
	for _, s := range sessions {
		if err := tr.Join(context.Background(), room, member(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// crash stops a tracker's traffic the way SIGKILL does: no bye, no leave,
// its connection just ends.
func crash(tr testTracker) { tr.nc.Close() }

// A node whose heartbeats stop is dropped DeadAfter after its last one: the
// NATS-only liveness, at production timing (it prints the figure the
// README quotes) and at test timing.
func TestHeartbeatDropsDeadNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		beat time.Duration
	}{
		{"production", nil, DefaultHeartbeat},
		{"fast", fastBeat, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := bustest.RunServer(t)
			n1 := newTracker(t, srv, "n1", tc.edit)
			n2 := newTracker(t, srv, "n2", tc.edit)
			mustJoin(t, n1, "r", "a")
			mustJoin(t, n2, "r", "b1", "b2")
			waitMembers(t, n1, "r", "a,b1,b2")
			// Let n1 hear a few heartbeats, its own included.
			bustest.Eventually(t, 5*time.Second, func() bool {
				n1.mu.Lock()
				defer n1.mu.Unlock()
				p := n1.peers["n2"]
				return n1.selfHeard != 0 && p != nil && p.heard > n1.selfHeard-int64(tc.beat)
			}, "n1 hears no heartbeats")

			killed := time.Now()
			crash(n2)
			bustest.Eventually(t, 10*time.Second, func() bool { return n1.ev.has("r -b2") && n1.ev.has("r -b1") },
				"n2's members never left n1's view: %q", n1.ev.list())
			took := time.Since(killed)
			deadAfter := deadBeats * tc.beat
			t.Logf("heartbeat %v: a crashed node's members left after %v (bound: DeadAfter %v + a check period)", tc.beat, took.Round(time.Millisecond), deadAfter)
			if lo, hi := deadAfter-tc.beat, deadAfter+tc.beat/4+tc.beat; took < lo || took > hi {
				t.Errorf("dropped after %v, want within [%v, %v]", took, lo, hi)
			}
			if tc.name == "production" && took > 5*time.Second {
				t.Errorf("took %v: over the 5 s goal", took)
			}
			waitMembers(t, n1, "r", "a")
		})
	}
}

// NodeFailed (gossip) does not drop a node whose heartbeats still arrive:
// the second opinion. Once they stop, it drops at once.
func TestNodeFailedSecondOpinion(t *testing.T) {
	srv := bustest.RunServer(t)
	slowExpiry := func(o *Options) { fastBeat(o); o.DeadAfter = time.Minute }
	n1 := newTracker(t, srv, "n1", slowExpiry)
	n2 := newTracker(t, srv, "n2", slowExpiry)
	mustJoin(t, n1, "r", "a")
	mustJoin(t, n2, "r", "b")
	waitMembers(t, n1, "r", "a,b")
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"] != nil && n1.peers["n2"].heard != 0
	}, "no heartbeat from n2")

	n1.NodeFailed("n2")
	// NodeFailed acts synchronously: had it dropped b, "-b" would be queued
	// before n2's next join is even sent.
	mustJoin(t, n2, "r", "c")
	n1.ev.wait(t, "r +c 3")
	if n1.ev.has("r -b") {
		t.Fatalf("gossip's verdict dropped a node with live heartbeats: %q", n1.ev.list())
	}

	crash(n2)
	start := time.Now()
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.NodeFailed("n2") // memberlist says so once; here, until it sticks
		return n1.ev.has("r -b")
	}, "NodeFailed never dropped n2 after its heartbeats stopped")
	t.Logf("NodeFailed took effect %v after the heartbeats stopped (freshness: 1.5 periods)", time.Since(start).Round(time.Millisecond))
	waitMembers(t, n1, "r", "a")
}

// A node seen with a newer incarnation restarted: the members of its
// previous run leave at once, and late heartbeats of that run do not bring
// them back.
func TestNodeAliveNewIncarnation(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", fastBeat)
	n2 := newTracker(t, srv, "n2", fastBeat)
	mustJoin(t, n1, "r", "a")
	mustJoin(t, n2, "r", "b")
	waitMembers(t, n1, "r", "a,b")

	n1.NodeAlive("n2", n2.Incarnation()+1)
	if got := ids(n1.Members("r")); got != "a" {
		t.Fatalf("after a restart was seen: %q", got)
	}
	n1.ev.wait(t, "r -b 1")
	// The old run's heartbeats keep coming (here it is still running): they
	// are stale and change nothing; neither does the old incarnation again.
	n1.NodeAlive("n2", n2.Incarnation())
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"].heard == 0 || n1.now()-n1.peers["n2"].heard > int64(300*time.Millisecond)
	}, "the stale run's heartbeats still count")
	if got := ids(n1.Members("r")); got != "a" {
		t.Fatalf("stale incarnation came back: %q", got)
	}
}

// TestPartitionHeals cuts n3 off (its NATS connection held, not closed, as
// in a network partition), then heals it: n1 and n2 drop n3's members
// within DeadAfter, n3 (deaf: its own heartbeats stop coming back) blames
// nobody, and after the heal every view is exactly the members still
// there, none twice. "busy" has members come and go on both sides during
// the cut (n3's late deltas make the others resync it); in "quiet" nothing
// changes, so only the "node is back" path (digests asked for at once) can
// bring n3's members back before the first anti-entropy tick (5 s).
func TestPartitionHeals(t *testing.T) {
	for _, busy := range []bool{true, false} {
		name := map[bool]string{true: "busy", false: "quiet"}[busy]
		t.Run(name, func(t *testing.T) { testPartitionHeals(t, busy) })
	}
}

func testPartitionHeals(t *testing.T, busy bool) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", fastBeat)
	n2 := newTracker(t, srv, "n2", fastBeat)
	px := bustest.NewProxy(t, srv.Addr().String())
	nc3, err := nats.Connect(px.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc3.Close)
	n3 := newTrackerOn(t, nc3, "n3", fastBeat)
	mustJoin(t, n1, "r", "a", "a2")
	mustJoin(t, n2, "r", "b")
	mustJoin(t, n3, "r", "c1", "c2")
	all := []testTracker{n1, n2, n3}
	for _, n := range all {
		waitMembers(t, n, "r", "a,a2,b,c1,c2")
	}
	bustest.Eventually(t, 5*time.Second, func() bool {
		n3.mu.Lock()
		defer n3.mu.Unlock()
		return n3.selfHeard != 0 && len(n3.peers) == 2
	}, "n3 hears no heartbeats")

	cut := time.Now()
	px.Block()
	majority, minority, final := "a,a2,b", "a,a2,b,c1,c2", "a,a2,b,c1,c2"
	if busy {
		n1.Leave("r", "a2")
		mustJoin(t, n2, "r", "b2")
		n3.Leave("r", "c1")
		mustJoin(t, n3, "r", "c3")
		majority, minority, final = "a,b,b2", "a,a2,b,c2,c3", "a,b,b2,c2,c3"
	}
	waitMembers(t, n1, "r", majority)
	waitMembers(t, n2, "r", majority)
	t.Logf("n1 and n2 dropped the cut-off node after %v", time.Since(cut).Round(time.Millisecond))
	// n3 is deaf: it must not drop the others on heartbeat silence. Watch
	// it for two DeadAfter periods past the point where it would have.
	for time.Since(cut) < 4*deadBeats*100*time.Millisecond {
		if n3.ev.has("r -a ") || n3.ev.has("r -b ") {
			t.Fatalf("the cut-off node blamed the others for its own silence: %q", n3.ev.list())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ids(n3.Members("r")); got != minority {
		t.Fatalf("n3 during the cut: %q, want %q", got, minority)
	}

	healed := time.Now()
	px.Release()
	for _, n := range all {
		waitMembers(t, n, "r", final)
	}
	took := time.Since(healed)
	t.Logf("every view converged %v after the heal", took.Round(time.Millisecond))
	if !busy && took > 3*time.Second {
		t.Errorf("converged after %v: the periodic digest did it, not the node-is-back path", took)
	}
	want := len(strings.Split(final, ","))
	for _, n := range all {
		if ms := n.Members("r"); len(ms) != want || n.Count("r") != want {
			t.Errorf("%s: %d members, count %d: duplicates", n.Node(), len(ms), n.Count("r"))
		}
	}
	if n3.ev.has("r -a ") || n3.ev.has("r -b ") {
		t.Errorf("n3 dropped live members after the heal: %q", n3.ev.list())
	}
	// Each side told its listener what changed on the other.
	wants := []struct {
		n  testTracker
		ev string
	}{{n1, "r -c1 "}, {n1, "r +c1 "}}
	if busy {
		wants = []struct {
			n  testTracker
			ev string
		}{{n1, "r +c3 "}, {n1, "r -c1 "}, {n3, "r -a2 "}, {n3, "r +b2 "}}
	}
	for _, w := range wants {
		if !w.n.ev.has(w.ev) {
			t.Errorf("%s never heard %q: %q", w.n.Node(), w.ev, w.n.ev.list())
		}
	}
}

// A graceful Close sends a last heartbeat: the others stop watching that
// run at once instead of declaring it dead later.
func TestCloseSaysBye(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", fastBeat)
	n2 := newTracker(t, srv, "n2", fastBeat)
	mustJoin(t, n1, "r", "a")
	mustJoin(t, n2, "r", "b")
	waitMembers(t, n1, "r", "a,b")
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"] != nil && n1.peers["n2"].heard != 0
	}, "no heartbeat from n2")
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"].gone
	}, "n1 still watches n2 after its bye")
	waitMembers(t, n1, "r", "a")
}

// Malformed heartbeats and digest requests are ignored; the tracker keeps
// working, and a heartbeat claiming our own id with another incarnation
// (two processes with one --node-id) does not count as our own.
func TestBadLivenessMessages(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", fastBeat)
	n2 := newTracker(t, srv, "n2", fastBeat)
	mustJoin(t, n1, "r", "a")
	mustJoin(t, n2, "r", "b")
	waitMembers(t, n1, "r", "a,b")
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"] != nil && n1.peers["n2"].heard != 0
	}, "no heartbeat from n2")
	nc := bustest.Connect(t, srv)
	node1 := "rc.presence.$node." + strconv.FormatUint(n1.Incarnation(), 10)
	for _, m := range []struct{ subject, body string }{
		{"rc.presence.$hb", ``},
		{"rc.presence.$hb", `{`},
		{"rc.presence.$hb", `{"node":""}`},
		{"rc.presence.$hb", `{"node":"n2","inc":"soon"}`},
		{"rc.presence.$hb", `[1,2]`},
		{"rc.presence.$hb", `{"node":"n1","inc":1}`},
		{"rc.presence.$hb", `{"node":"n2","inc":1,"bye":true}`}, // an old run of n2 says bye: stale
		{node1, `{`},
		{node1, `{"node":"x"}`},
		{node1, `{"node":"x","digests":false}`},
		{node1, `{"node":"x","digests":true}`},
	} {
		if err := nc.Publish(m.subject, []byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, n2, "r", "c")
	n1.ev.wait(t, "r +c 3")
	if n1.ev.has("r -b ") {
		t.Fatalf("a stale bye dropped a live node: %q", n1.ev.list())
	}
	n1.mu.Lock()
	defer n1.mu.Unlock()
	if p := n1.peers["n2"]; p == nil || p.gone || p.inc != n2.Incarnation() {
		t.Fatalf("n2's record after garbage: %+v", p)
	}
}

// metered is a tracker with a registry of its own, its heartbeat count
// wired to roomcast_peers as pkg/node does.
type metered struct {
	testTracker
	reg *prometheus.Registry
}

func newMetered(t *testing.T, srv *server.Server, node string) metered {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	tr := newTracker(t, srv, node, func(o *Options) { fastBeat(o); o.Metrics = m })
	m.SetPeers(metrics.SourceHeartbeat, tr.Peers)
	return metered{tr, reg}
}

func (m metered) series() metricstest.Peers {
	return metricstest.Peers{G: m.reg, Source: "heartbeat", Who: m.Node()}
}

func (m metered) alive(t *testing.T) float64               { return m.series().Alive(t) }
func (m metered) count(t *testing.T, event string) float64 { return m.series().Count(t, event) }

// waitPeers waits until m counts want peers alive, with the events that
// say how they came and went; it returns how long that took.
func (m metered) waitPeers(t *testing.T, want float64, events map[string]float64) time.Duration {
	t.Helper()
	return m.series().Wait(t, 5*time.Second, want, events)
}

// roomcast_peers{source="heartbeat"} and roomcast_peer_events_total follow
// what the heartbeats see: every node counts the two others; a graceful
// Close is a left at once (its bye), a crash a failed after DeadAfter
// (even when gossip said so first), a new run of a node joined and
// restarted; a stale heartbeat counts nothing.
func TestPeerMetrics(t *testing.T) {
	srv := bustest.RunServer(t)
	n1, n2, n3 := newMetered(t, srv, "n1"), newMetered(t, srv, "n2"), newMetered(t, srv, "n3")
	for _, n := range []metered{n1, n2, n3} {
		n.waitPeers(t, 2, map[string]float64{"joined": 2, "left": 0, "failed": 0, "restarted": 0})
	}

	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []metered{n1, n2} {
		took := n.waitPeers(t, 1, map[string]float64{"joined": 2, "left": 1, "failed": 0})
		t.Logf("%s: n3's Close counted left after %v", n.Node(), took.Round(time.Millisecond))
	}
	if v := n3.alive(t); v != 0 {
		t.Errorf("a closed tracker counts %v peers", v)
	}

	// n2 crashes, and gossip declares it dead as soon as its heartbeats
	// are late (1.5 periods): presence drops its members then, but the
	// heartbeats still count n2 until they have been silent for
	// DeadAfter, and then count their own failed.
	killed := time.Now()
	crash(n2.testTracker)
	bustest.Eventually(t, 5*time.Second, func() bool {
		n1.NodeFailed("n2")
		n1.mu.Lock()
		defer n1.mu.Unlock()
		return n1.peers["n2"].gone
	}, "NodeFailed never took n2")
	if v := n1.count(t, "failed"); v != 0 || n1.alive(t) != 1 {
		t.Errorf("gossip's verdict counted as the heartbeats': failed %v, peers %v", v, n1.alive(t))
	}
	n1.waitPeers(t, 0, map[string]float64{"joined": 2, "left": 1, "failed": 1})
	took := time.Since(killed)
	beat := 100 * time.Millisecond
	t.Logf("n1: n2's crash counted failed after %v (DeadAfter %v)", took.Round(time.Millisecond), deadBeats*beat)
	if hi := deadBeats*beat + beat/4 + beat; took > hi {
		t.Errorf("failed counted after %v, want within %v", took, hi)
	}

	// n3 again, a new run: it joins, and its new incarnation is a restart.
	again := newMetered(t, srv, "n3")
	took = n1.waitPeers(t, 1, map[string]float64{"joined": 3, "left": 1, "failed": 1, "restarted": 1})
	t.Logf("n1: n3's new run counted joined and restarted after %v", took.Round(time.Millisecond))
	again.waitPeers(t, 1, map[string]float64{"joined": 1, "restarted": 0})

	// A late heartbeat of n3's previous run counts nothing. A heartbeat of
	// a new node x, sent after it on the same connection, is handled after
	// it: once x is counted, the stale one was seen.
	nc := bustest.Connect(t, srv)
	for _, hb := range []heartbeat{{Node: "n3", Inc: n3.Incarnation()}, {Node: "x", Inc: 1}} {
		body, _ := json.Marshal(hb)
		if err := nc.Publish("rc.presence.$hb", body); err != nil {
			t.Fatal(err)
		}
	}
	n1.waitPeers(t, 2, map[string]float64{"joined": 4, "left": 1, "failed": 1, "restarted": 1})
}
