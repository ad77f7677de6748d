package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// events records Listener calls as "room +session count" strings.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
}

func (e *events) Joined(room string, m Member, n int) {
	e.add(fmt.Sprintf("%s +%s %d", room, m.Session, n))
}
func (e *events) Left(room string, m Member, n int) {
	e.add(fmt.Sprintf("%s -%s %d", room, m.Session, n))
}
func (e *events) Updated(room string, m Member, n int) {
	e.add(fmt.Sprintf("%s ~%s %s", room, m.Session, m.Meta))
}
func (e *events) Counted(room string, n int) { e.add(fmt.Sprintf("%s #%d", room, n)) }
func (e *events) Reset(room string, n int, countOnly bool) {
	e.add(fmt.Sprintf("%s reset %d %v", room, n, countOnly))
}

// wait waits for an event equal to want.
func (e *events) wait(t *testing.T, want string) {
	t.Helper()
	bustest.Eventually(t, 5*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return slices.Contains(e.got, want)
	}, "no event %q; got %q", want, e.list())
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

type testTracker struct {
	*Tracker
	ev *events
	nc *nats.Conn
}

func newTracker(t *testing.T, srv *server.Server, node string, edit func(*Options)) testTracker {
	t.Helper()
	return newTrackerOn(t, bustest.Connect(t, srv), node, edit)
}

// newTrackerOn starts a tracker on the connection nc.
func newTrackerOn(t *testing.T, nc *nats.Conn, node string, edit func(*Options)) testTracker {
	t.Helper()
	o := Options{Node: node, NC: nc, Metrics: metrics.New(nil)}
	if edit != nil {
		edit(&o)
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	tr.Listen(ev)
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return testTracker{tr, ev, nc}
}

func member(s string) Member {
	return Member{Session: s, User: "u" + s, ConnectedAt: time.Now().UnixMilli()}
}

func ids(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Session)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func waitMembers(t *testing.T, tr testTracker, room, want string) {
	t.Helper()
	bustest.Eventually(t, 5*time.Second, func() bool { return ids(tr.Members(room)) == want },
		"%s: members of %s are %q, want %q", tr.Node(), room, ids(tr.Members(room)), want)
}

func TestTrackersSeeEachOther(t *testing.T) {
	srv := bustest.RunServer(t)
	// A long SnapshotWait proves the waits end early.
	slow := func(o *Options) { o.SnapshotWait = 3 * time.Second }
	n1 := newTracker(t, srv, "n1", slow)
	n2 := newTracker(t, srv, "n2", slow)
	n3 := newTracker(t, srv, "n3", slow)
	ctx := context.Background()

	start := time.Now()
	if err := n1.Join(ctx, "r", member("a")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("first join of an empty room took %v: no-responders did not end the wait", d)
	}
	start = time.Now()
	if err := n2.Join(ctx, "r", member("b")); err != nil {
		t.Fatal(err)
	}
	if got := ids(n2.Members("r")); got != "a,b" {
		t.Fatalf("n2 right after Join: %q", got)
	}
	if err := n3.Join(ctx, "r", member("c")); err != nil {
		t.Fatal(err)
	}
	if got := ids(n3.Members("r")); got != "a,b,c" {
		t.Fatalf("n3 right after Join: %q", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("joins with answering nodes took %v", d)
	}
	n1.ev.wait(t, "r +b 2")
	n1.ev.wait(t, "r +c 3")
	n2.ev.wait(t, "r +c 3")
	waitMembers(t, n1, "r", "a,b,c")

	// Meta update.
	m := member("b")
	m.Meta = json.RawMessage(`{"x":1}`)
	if err := n2.Join(ctx, "r", m); err != nil {
		t.Fatal(err)
	}
	n3.ev.wait(t, `r ~b {"x":1}`)

	n2.Leave("r", "b")
	n1.ev.wait(t, "r -b 2")
	n3.ev.wait(t, "r -b 2")
	if n2.Rooms() != 0 || n2.Members("r") != nil {
		t.Fatalf("n2 still tracks r: %v", n2.Members("r"))
	}
	if n1.Count("r") != 2 {
		t.Fatalf("n1 count %d", n1.Count("r"))
	}
	// Local changes are reported too; the tracker's own first join is not
	// (the joiner gets a list instead).
	n1.ev.wait(t, "r +c 3")
	if err := n1.Join(ctx, "r", member("a2")); err != nil {
		t.Fatal(err)
	}
	n1.ev.wait(t, "r +a2 3")
	if slices.Contains(n1.ev.list(), "r +a 1") {
		t.Fatal("first local join reported")
	}
}

func TestConcurrentFirstJoins(t *testing.T) {
	srv := bustest.RunServer(t)
	fast := func(o *Options) { o.AntiEntropy = 100 * time.Millisecond }
	n1 := newTracker(t, srv, "n1", fast)
	n2 := newTracker(t, srv, "n2", fast)
	const rooms = 30
	var wg sync.WaitGroup
	for _, n := range []testTracker{n1, n2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rooms {
				if err := n.Join(context.Background(), "r"+strconv.Itoa(i), member(n.Node())); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i := range rooms {
		waitMembers(t, n1, "r"+strconv.Itoa(i), "n1,n2")
		waitMembers(t, n2, "r"+strconv.Itoa(i), "n1,n2")
	}
}

// fakeNode speaks the presence protocol by hand, to make gaps on purpose.
type fakeNode struct {
	t       *testing.T
	nc      *nats.Conn
	name    string
	inc     uint64
	epoch   uint64
	seq     uint64
	members map[string]Member
	mu      sync.Mutex
}

func newFake(t *testing.T, srv *server.Server, name string, inc uint64) *fakeNode {
	f := &fakeNode{t: t, nc: bustest.Connect(t, srv), name: name, inc: inc, epoch: 1, members: map[string]Member{}}
	_, err := f.nc.Subscribe("rc.presence.$node."+strconv.FormatUint(inc, 10), func(m *nats.Msg) {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := snapshot{Node: f.name, Inc: f.inc, Epoch: f.epoch, Seq: f.seq, Last: true, Members: sortedMembers(f.members)}
		data, _ := json.Marshal(s)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.nc.Flush()
	return f
}

// publish sends a delta; lose drops it (the sequence still advances).
func (f *fakeNode) publish(room, op, session string, lose bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	d := delta{Op: op, Node: f.name, Inc: f.inc, Epoch: f.epoch, Seq: f.seq}
	switch op {
	case opJoin:
		m := member(session)
		f.members[session] = m
		d.Member = &m
	case opLeave:
		delete(f.members, session)
		d.Session = session
	case opDigest:
		f.seq--
		d.Seq, d.Count = f.seq, len(f.members)
	}
	if lose {
		return
	}
	data, _ := json.Marshal(d)
	if err := f.nc.Publish("rc.presence."+room, data); err != nil {
		f.t.Fatal(err)
	}
	_ = f.nc.Flush()
}

func TestGapResync(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", nil)
	if err := n1.Join(context.Background(), "r", member("a")); err != nil {
		t.Fatal(err)
	}
	f := newFake(t, srv, "fake", 77)
	f.publish("r", opJoin, "x", false)
	waitMembers(t, n1, "r", "a,x")
	f.publish("r", opJoin, "y", true) // lost
	f.publish("r", opJoin, "z", false)
	waitMembers(t, n1, "r", "a,x,y,z")
	var resyncs dto.Metric
	if err := n1.o.Metrics.PresenceResyncs.Write(&resyncs); err != nil {
		t.Fatal(err)
	}
	if got := resyncs.GetCounter().GetValue(); got < 1 {
		t.Fatalf("resyncs %v", got)
	}
	// A lost delta with nothing after it is found by the digest.
	f.publish("r", opLeave, "x", true)
	f.publish("r", opDigest, "", false)
	waitMembers(t, n1, "r", "a,y,z")
	n1.ev.wait(t, "r -x 3")
}

func TestRestartAndNodeGone(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", nil)
	ctx := context.Background()
	if err := n1.Join(ctx, "r", member("a")); err != nil {
		t.Fatal(err)
	}
	// n2 crashes: its connection just ends, no bye.
	n2 := newTracker(t, srv, "n2", nil)
	if err := n2.Join(ctx, "r", member("b")); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, n1, "r", "a,b")
	n2.nc.Close()
	// It comes back as a new incarnation with another member.
	n2b := newTracker(t, srv, "n2", nil)
	if err := n2b.Join(ctx, "r", member("c")); err != nil {
		t.Fatal(err)
	}
	n1.ev.wait(t, "r -b 1")
	waitMembers(t, n1, "r", "a,c")
	if got := ids(n2b.Members("r")); got != "a,c" {
		t.Fatalf("restarted node's view: %q", got)
	}

	// Liveness says n2 is gone: its members leave at once.
	n1.NodeGone("n2")
	n1.ev.wait(t, "r -c 1")
	// It was only cut off: its next delta brings all of it back.
	if err := n2b.Join(ctx, "r", member("d")); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, n1, "r", "a,c,d")
}

func TestCloseAnnouncesLeaves(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", nil)
	n2 := newTracker(t, srv, "n2", nil)
	ctx := context.Background()
	for _, r := range []string{"r1", "r2"} {
		if err := n1.Join(ctx, r, member("a")); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"b1", "b2"} {
			if err := n2.Join(ctx, r, member(s+r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitMembers(t, n1, "r2", "a,b1r2,b2r2")
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n2.Join(ctx, "r1", member("late")); err != ErrClosed {
		t.Fatalf("join after close: %v", err)
	}
	waitMembers(t, n1, "r1", "a")
	waitMembers(t, n1, "r2", "a")
	n1.ev.wait(t, "r1 -b1r1 2")
	n1.ev.wait(t, "r2 -b2r2 1")
}

func TestSilentNodeExpires(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", func(o *Options) { o.AntiEntropy = 50 * time.Millisecond })
	if err := n1.Join(context.Background(), "r", member("a")); err != nil {
		t.Fatal(err)
	}
	f := newFake(t, srv, "fake", 5)
	f.publish("r", opJoin, "x", false)
	waitMembers(t, n1, "r", "a,x")
	start := time.Now()
	n1.ev.wait(t, "r -x 1")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("expired after %v, before 3 intervals", d)
	}
}

func TestCountOnly(t *testing.T) {
	srv := bustest.RunServer(t)
	n1 := newTracker(t, srv, "n1", func(o *Options) {
		o.CountOnlyAbove = 4
		o.CountInterval = 50 * time.Millisecond
	})
	n2 := newTracker(t, srv, "n2", nil)
	ctx := context.Background()
	if err := n1.Join(ctx, "r", member("a")); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := n2.Join(ctx, "r", member("b"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	n1.ev.wait(t, "r reset 5 true")
	if ms, n, co := n1.View("r"); ms != nil || n != 5 || !co {
		t.Fatalf("view: %v %d %v", ms, n, co)
	}
	for i := 4; i < 8; i++ {
		if err := n2.Join(ctx, "r", member("b"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A burst ends with the final count, throttled.
	n1.ev.wait(t, "r #9")
	for i := range 6 {
		n2.Leave("r", "b"+strconv.Itoa(i))
	}
	// 3 ≤ 3/4 of 4: back to full presence.
	n1.ev.wait(t, "r reset 3 false")
	if ms, n, co := n1.View("r"); len(ms) != 3 || n != 3 || co {
		t.Fatalf("view: %v %d %v", ms, n, co)
	}
	n2.Leave("r", "b6")
	n1.ev.wait(t, "r -b6 2")
}

func TestChunkedSnapshot(t *testing.T) {
	srv := bustest.RunServerWith(t, &server.Options{MaxPayload: 4096})
	n1 := newTracker(t, srv, "n1", nil)
	n2 := newTracker(t, srv, "n2", nil)
	ctx := context.Background()
	const n = 300
	for i := range n {
		m := member("s" + strconv.Itoa(i))
		m.Meta = json.RawMessage(`{"name":"` + strings.Repeat("x", 20) + `"}`)
		if err := n1.Join(ctx, "big", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := n2.Join(ctx, "big", member("late")); err != nil {
		t.Fatal(err)
	}
	if got := n2.Count("big"); got != n+1 {
		t.Fatalf("count after chunked snapshot: %d", got)
	}
}
