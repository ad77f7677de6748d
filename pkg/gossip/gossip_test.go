package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/metrics/metricstest"
)

// fast shrinks every memberlist timing 5 times (a dead node is found in
// about 0.6 s) for the tests that are about behaviour, not the figures.
const fast = 100 * time.Millisecond

// recorder is a Listener that keeps "alive n inc", "failed n", "gone n"
// with the time each came.
type recorder struct {
	mu  sync.Mutex
	evs []string
	at  map[string]time.Time
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, s)
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	if _, ok := r.at[s]; !ok {
		r.at[s] = time.Now()
	}
}

func (r *recorder) NodeAlive(node string, inc uint64) { r.add(fmt.Sprintf("alive %s %d", node, inc)) }
func (r *recorder) NodeFailed(node string)            { r.add("failed " + node) }
func (r *recorder) NodeGone(node string)              { r.add("gone " + node) }

func (r *recorder) when(ev string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[ev]
	return at, ok
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

func (r *recorder) wait(t *testing.T, d time.Duration, ev string) time.Time {
	t.Helper()
	var at time.Time
	bustest.Eventually(t, d, func() bool {
		var ok bool
		at, ok = r.when(ev)
		return ok
	}, "no %q; got %q", ev, r.list())
	return at
}

type testNode struct {
	*Cluster
	rec *recorder
	inc uint64
}

// start starts a node named name on a free loopback port; edit may change
// its options (ProbeInterval defaults to production's).
func start(t *testing.T, name string, edit func(*Options)) testNode {
	t.Helper()
	rec := &recorder{}
	o := Options{Node: name, Incarnation: uint64(time.Now().UnixNano()), Bind: "127.0.0.1:0", Listener: rec}
	if edit != nil {
		edit(&o)
	}
	c, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return testNode{c, rec, o.Incarnation}
}

func probe(d time.Duration) func(*Options) {
	return func(o *Options) { o.ProbeInterval, o.RejoinInterval = d, d }
}

func joining(edit func(*Options), seeds ...string) func(*Options) {
	return func(o *Options) {
		if edit != nil {
			edit(o)
		}
		o.Join = seeds
	}
}

// cluster starts n nodes, n1 first and the others joining it, and waits
// until every node sees all of them.
func cluster(t *testing.T, n int, edit func(*Options)) []testNode {
	t.Helper()
	nodes := []testNode{start(t, "n1", edit)}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, start(t, "n"+strconv.Itoa(i), joining(edit, nodes[0].Addr())))
	}
	waitSize(t, nodes, n)
	return nodes
}

func waitSize(t *testing.T, nodes []testNode, n int) {
	t.Helper()
	for _, c := range nodes {
		bustest.Eventually(t, 10*time.Second, func() bool { return len(c.Members()) == n },
			"%s sees %d members, want %d", c.o.Node, len(c.Members()), n)
	}
}

// Nodes join by address and by DNS name, and each hears the others with
// the incarnation they publish, never itself.
func TestJoinByName(t *testing.T) {
	a := start(t, "a", probe(fast))
	b := start(t, "b", joining(probe(fast), a.Addr()))
	_, port, _ := net.SplitHostPort(a.Addr())
	c := start(t, "c", joining(probe(fast), "localhost:"+port))
	nodes := []testNode{a, b, c}
	waitSize(t, nodes, 3)
	a.rec.wait(t, 5*time.Second, fmt.Sprintf("alive b %d", b.inc))
	a.rec.wait(t, 5*time.Second, fmt.Sprintf("alive c %d", c.inc))
	c.rec.wait(t, 5*time.Second, fmt.Sprintf("alive a %d", a.inc))
	for _, m := range a.Members() {
		if m.Node == "c" && m.Incarnation != c.inc {
			t.Fatalf("c's metadata: %+v, want inc %d", m, c.inc)
		}
	}
	for _, n := range nodes {
		if slices.ContainsFunc(n.rec.list(), func(s string) bool { return s == "alive "+n.o.Node+" "+strconv.FormatUint(n.inc, 10) }) {
			t.Fatalf("%s was told about itself", n.o.Node)
		}
	}
}

// A node that stops without leaving (SIGKILL, a pulled cable) is reported
// failed by every other node within the 5 s goal, at production timing. 3
// nodes: no confirmations expected (k = 0), the suspicion timeout is 2 s.
// 5 nodes: the timer starts at 4 s and needs 2 confirmations to fall to 2 s.
func TestDeadNodeDetected(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(strconv.Itoa(n)+" nodes", func(t *testing.T) {
			t.Parallel()
			nodes := cluster(t, n, nil)
			dead := nodes[n-1]
			killed := time.Now()
			_ = dead.Shutdown()
			var slowest time.Duration
			for _, c := range nodes[:n-1] {
				at := c.rec.wait(t, 10*time.Second, "failed "+dead.o.Node)
				slowest = max(slowest, at.Sub(killed))
			}
			t.Logf("%d nodes, probe interval %v: a killed node was reported failed by all %d others within %v",
				n, DefaultProbeInterval, n-1, slowest.Round(time.Millisecond))
			if slowest > 5*time.Second {
				t.Errorf("failure detection took %v, over the 5 s goal", slowest)
			}
		})
	}
}

// Close (a graceful leave) is heard at once, as NodeGone, not NodeFailed.
func TestLeaveAnnouncedAtOnce(t *testing.T) {
	nodes := cluster(t, 3, nil)
	left := time.Now()
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range nodes[:2] {
		at := c.rec.wait(t, 5*time.Second, "gone n3")
		t.Logf("%s heard the leave after %v", c.o.Node, at.Sub(left).Round(time.Millisecond))
		if d := at.Sub(left); d > time.Second {
			t.Errorf("%s heard the leave after %v", c.o.Node, d)
		}
		if _, ok := c.rec.when("failed n3"); ok {
			t.Errorf("%s reported a graceful leave as a failure", c.o.Node)
		}
	}
	if err := nodes[2].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A node restarted on the same address with a new incarnation is seen
// with it: presence drops the previous run's members from that alone.
func TestRestartSeen(t *testing.T) {
	nodes := cluster(t, 3, probe(fast))
	old := nodes[2]
	addr := old.Addr()
	_ = old.Shutdown()
	again := start(t, "n3", joining(func(o *Options) { probe(fast)(o); o.Bind = addr }, nodes[0].Addr()))
	for _, c := range nodes[:2] {
		c.rec.wait(t, 10*time.Second, fmt.Sprintf("alive n3 %d", again.inc))
	}
	waitSize(t, []testNode{nodes[0], nodes[1], again}, 3)
}

// The Listener runs on the Cluster's goroutine: one that blocks delays
// its own events, never gossip.
func TestBlockedListenerDoesNotBlockGossip(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	stuck := &blockingListener{release: release, calls: &calls}
	a := start(t, "a", func(o *Options) { probe(fast)(o); o.Listener = stuck })
	b := start(t, "b", joining(probe(fast), a.Addr()))
	bustest.Eventually(t, 5*time.Second, func() bool { return calls.Load() == 1 }, "a's listener not called")
	c := start(t, "c", joining(probe(fast), b.Addr()))
	waitSize(t, []testNode{a, b, c}, 3)
	_ = c.Shutdown()
	b.rec.wait(t, 5*time.Second, "failed c")
	// a's memberlist found c dead too, with its listener still stuck.
	bustest.Eventually(t, 5*time.Second, func() bool { return len(a.Members()) == 2 }, "a's gossip stalled")
	close(release)
	bustest.Eventually(t, 5*time.Second, func() bool { return calls.Load() == 3 }, "a heard %d events, want 3 (alive b, alive c, failed c)", calls.Load())
}

type blockingListener struct {
	release chan struct{}
	calls   *atomic.Int32
}

func (l *blockingListener) wait()                    { l.calls.Add(1); <-l.release }
func (l *blockingListener) NodeAlive(string, uint64) { l.wait() }
func (l *blockingListener) NodeFailed(string)        { l.wait() }
func (l *blockingListener) NodeGone(string)          { l.wait() }

// A node whose seeds are not up at its start keeps trying them, names
// resolved again each time; a name's addresses of the other family are
// skipped.
func TestSeedsRetriedUntilUp(t *testing.T) {
	port := freePort(t)
	var lookups atomic.Int32
	lookup := func(_ context.Context, host string) ([]net.IP, error) {
		lookups.Add(1)
		if host != "peers.test" {
			return nil, errors.New("no such host")
		}
		return []net.IP{net.ParseIP("::1"), net.ParseIP("127.0.0.1")}, nil
	}
	a := start(t, "a", joining(func(o *Options) { probe(fast)(o); o.lookup = lookup }, "peers.test:"+strconv.Itoa(port)))
	bustest.Eventually(t, 5*time.Second, func() bool { return lookups.Load() >= 2 }, "seeds not retried")
	if n := len(a.Members()); n != 1 {
		t.Fatalf("a has %d members before its seed is up", n)
	}
	b := start(t, "b", func(o *Options) { probe(fast)(o); o.Bind = "127.0.0.1:" + strconv.Itoa(port) })
	waitSize(t, []testNode{a, b}, 2)
	b.rec.wait(t, 5*time.Second, fmt.Sprintf("alive a %d", a.inc))
}

// freePort returns a loopback port free for both TCP and UDP right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// partitionable drops everything a node sends and receives while cut, as
// a partition does; dials fail at once.
type partitionable struct {
	memberlist.NodeAwareTransport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{} // Shutdown began: drop everything
	done    chan struct{} // the inner transport is shut down
	once    sync.Once
}

func newPartitionable(inner memberlist.NodeAwareTransport) *partitionable {
	p := &partitionable{NodeAwareTransport: inner, packets: make(chan *memberlist.Packet, 64),
		streams: make(chan net.Conn, 16), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		// Runs until the inner transport is down: its listeners must
		// always be able to hand over what they read, or its Shutdown
		// waits for them forever.
		for {
			select {
			case <-p.done:
				return
			case pkt := <-inner.PacketCh():
				if !p.cut.Load() {
					select {
					case p.packets <- pkt:
					case <-p.stop:
					}
				}
			case c := <-inner.StreamCh():
				if p.cut.Load() {
					c.Close()
					continue
				}
				select {
				case p.streams <- c:
				case <-p.stop:
					c.Close()
				}
			}
		}
	}()
	return p
}

var errCut = errors.New("partitioned")

func (p *partitionable) PacketCh() <-chan *memberlist.Packet { return p.packets }
func (p *partitionable) StreamCh() <-chan net.Conn           { return p.streams }
func (p *partitionable) WriteTo(b []byte, addr string) (time.Time, error) {
	if p.cut.Load() {
		return time.Now(), nil
	}
	return p.NodeAwareTransport.WriteTo(b, addr)
}
func (p *partitionable) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if p.cut.Load() {
		return time.Now(), nil
	}
	return p.NodeAwareTransport.WriteToAddress(b, a)
}
func (p *partitionable) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if p.cut.Load() {
		return nil, errCut
	}
	return p.NodeAwareTransport.DialTimeout(addr, d)
}
func (p *partitionable) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	if p.cut.Load() {
		return nil, errCut
	}
	return p.NodeAwareTransport.DialAddressTimeout(a, d)
}
func (p *partitionable) Shutdown() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		err = p.NodeAwareTransport.Shutdown()
		close(p.done)
	})
	return err
}

// withCut gives the node a transport the test can cut, returned in *pp.
func withCut(pp **partitionable) func(*Options) {
	return func(o *Options) {
		o.wrap = func(nt memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			*pp = newPartitionable(nt)
			return *pp
		}
	}
}

// After a partition both sides have declared the other dead; memberlist
// alone would leave them apart for good. The rejoin loop merges them.
func TestRejoinAfterPartition(t *testing.T) {
	var cut *partitionable
	a := start(t, "a", probe(fast))
	b := start(t, "b", joining(probe(fast), a.Addr()))
	c := start(t, "c", joining(func(o *Options) { probe(fast)(o); withCut(&cut)(o) }, a.Addr()))
	nodes := []testNode{a, b, c}
	waitSize(t, nodes, 3)

	cut.cut.Store(true)
	a.rec.wait(t, 10*time.Second, "failed c")
	b.rec.wait(t, 10*time.Second, "failed c")
	c.rec.wait(t, 10*time.Second, "failed a")
	c.rec.wait(t, 10*time.Second, "failed b")

	healed := time.Now()
	cut.cut.Store(false)
	waitSize(t, nodes, 3)
	t.Logf("memberlist merged again %v after the heal", time.Since(healed).Round(time.Millisecond))
	for _, want := range []struct {
		n    testNode
		peer testNode
	}{{a, c}, {b, c}, {c, a}, {c, b}} {
		ev := fmt.Sprintf("alive %s %d", want.peer.o.Node, want.peer.inc)
		bustest.Eventually(t, 5*time.Second, func() bool {
			evs := want.n.rec.list()
			i := slices.Index(evs, "failed "+want.peer.o.Node)
			return i >= 0 && slices.Contains(evs[i:], ev)
		}, "%s: no %q after the heal: %q", want.n.o.Node, ev, want.n.rec.list())
	}
}

// meteredNode is a node with a registry of its own, its count wired to
// roomcast_peers as pkg/node does.
type meteredNode struct {
	testNode
	reg *prometheus.Registry
}

func startMetered(t *testing.T, name string, edit func(*Options)) meteredNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	n := start(t, name, func(o *Options) {
		probe(fast)(o)
		if edit != nil {
			edit(o)
		}
		o.Metrics = m
	})
	m.SetPeers(metrics.SourceGossip, n.Peers)
	return meteredNode{n, reg}
}

func (n meteredNode) series() metricstest.Peers {
	return metricstest.Peers{G: n.reg, Source: "gossip", Who: n.o.Node}
}

func (n meteredNode) alive(t *testing.T) float64 { return n.series().Alive(t) }

// waitPeers waits until n counts want peers alive, with the events that
// say how they came and went; it returns how long that took.
func (n meteredNode) waitPeers(t *testing.T, want float64, events map[string]float64) time.Duration {
	t.Helper()
	return n.series().Wait(t, 10*time.Second, want, events)
}

// roomcast_peers{source="gossip"} and roomcast_peer_events_total follow
// memberlist, over loopback at test timing: every node counts the two
// others; Close is a left, a node stopped without leaving a failed once
// memberlist finds it dead, and a new run of a node joined and restarted.
func TestPeerMetrics(t *testing.T) {
	n1 := startMetered(t, "n1", nil)
	n2 := startMetered(t, "n2", joining(nil, n1.Addr()))
	n3 := startMetered(t, "n3", joining(nil, n1.Addr()))
	for _, n := range []meteredNode{n1, n2, n3} {
		n.waitPeers(t, 2, map[string]float64{"joined": 2, "left": 0, "failed": 0, "restarted": 0})
	}

	addr := n3.Addr()
	left := time.Now()
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []meteredNode{n1, n2} {
		n.waitPeers(t, 1, map[string]float64{"joined": 2, "left": 1, "failed": 0})
		t.Logf("%s: n3's leave counted %v after its Close began", n.o.Node, time.Since(left).Round(time.Millisecond))
	}
	if v := n3.alive(t); v != 0 {
		t.Errorf("a closed Cluster counts %v peers", v)
	}

	killed := time.Now()
	_ = n2.Shutdown()
	n1.waitPeers(t, 0, map[string]float64{"joined": 2, "left": 1, "failed": 1})
	t.Logf("n1: n2's stop without a leave counted failed after %v (probe interval %v)", time.Since(killed).Round(time.Millisecond), fast)

	again := startMetered(t, "n3", joining(func(o *Options) { o.Bind = addr }, n1.Addr()))
	took := n1.waitPeers(t, 1, map[string]float64{"joined": 3, "left": 1, "failed": 1, "restarted": 1})
	t.Logf("n1: n3's new run counted joined and restarted after %v", took.Round(time.Millisecond))
	again.waitPeers(t, 1, map[string]float64{"joined": 1, "restarted": 0})
}
