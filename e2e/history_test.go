package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// historyConfig keeps history for hist.* (large enough for every test
// here) and small.* (20 messages, for a gap older than the history).
const historyConfig = `
history:
  - rooms: "hist.>"
    size: 100000
    ttl: 10m
  - rooms: "small.>"
    size: 20
    ttl: 10m
routes:
  - path: /h
    auth: public
    allow: ["hist.>", "small.>"]
`

// publishRate is the publisher's rate in the recovery tests, msg/s.
const publishRate = 500

// TestHistoryRecovery runs three nodes on one real NATS with a publisher at
// 500 msg/s into a history room, and a client whose connection is lost: its
// node is SIGKILLed, its node drains (SIGTERM), its socket drops for 5 s.
// Each time the client (client.Resilient) reconnects, re-joins with since,
// and ends with every published message exactly once, in order: the
// publisher numbers its messages, and the client checks the numbers are
// 0…N-1 and the seqs increase. Then a gap older than the history gives
// recovered:false.
func TestHistoryRecovery(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	drain := []string{"--drain-window", "1s", "--drain-grace", "10s"}
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "ha", NATS: ns.ClientURL(), Config: historyConfig, Args: drain},
		harness.NodeConfig{ID: "hb", NATS: ns.ClientURL(), Config: historyConfig, Args: drain},
		harness.NodeConfig{ID: "hc", NATS: ns.ClientURL(), Config: historyConfig, Args: drain},
	)
	a, b, c := nodes[0], nodes[1], nodes[2]
	nc := bustest.Connect(t, ns)

	// Each case: the client starts on `from`, loses its connection by
	// `lose`, and comes back on `to`.
	run := func(t *testing.T, room string, from, to *harness.Node, lose func(rc *recoveringClient)) {
		rc := dialRecovering(t, from, room)
		replayedBefore := to.MustMetrics(t).Sum("roomcast_history_replayed_total")
		pub := startPublisher(t, nc, room, publishRate)
		rc.log.waitFor(t, publishRate/2, 15*time.Second) // ~1 s of traffic seen live
		rc.target.Store(to)
		start := time.Now()
		lose(rc)
		rc.waitReconnected(t, 30*time.Second)
		gap := time.Since(start)
		time.Sleep(time.Second) // live traffic after the seam
		total := pub.stop(t)
		rc.log.waitFor(t, total, 30*time.Second)
		time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
		rc.log.check(t, total)
		rj := rc.lastRejoin(t)
		if rj.Err != nil || !rj.Recovered {
			t.Errorf("re-join of %s = %+v; want recovered", room, rj)
		}
		replayed := int(to.MustMetrics(t).Sum("roomcast_history_replayed_total") - replayedBefore)
		// What was published while the client was away comes as replay;
		// the bound leaves 200 ms for the re-join (whose tail is live) and
		// a factor 2 for a loaded machine.
		if want := int((gap.Seconds() - 0.2) * publishRate / 2); replayed < want {
			t.Errorf("%d messages replayed after a %v gap; want at least %d", replayed, gap, want)
		}
		t.Logf("%s: %d messages at %d/s, exactly once and in order; reconnected %v after the loss (node %s → %s), %d replayed",
			room, total, publishRate, gap.Round(time.Millisecond), from.ID, to.ID, replayed)
	}

	// The client stays away a while (2 s, 1 s) so that the replay, read on
	// another node than the one the client left, is a real one.
	t.Run("NodeKilled", func(t *testing.T) {
		run(t, "hist.kill", a, b, func(rc *recoveringClient) {
			rc.notBefore.Store(time.Now().Add(2 * time.Second).UnixNano())
			a.Kill()
		})
	})
	t.Run("NodeDrained", func(t *testing.T) {
		run(t, "hist.drain", b, c, func(rc *recoveringClient) {
			rc.notBefore.Store(time.Now().Add(time.Second).UnixNano())
			b.Terminate()
		})
	})
	t.Run("SocketDropped5s", func(t *testing.T) {
		run(t, "hist.drop", c, c, func(rc *recoveringClient) {
			rc.notBefore.Store(time.Now().Add(5 * time.Second).UnixNano())
			rc.dropSocket()
		})
	})
	t.Run("GapOlderThanHistory", func(t *testing.T) {
		room := "small.gap"
		ctx := harness.Ctx(t, wait)
		cl := c.Dial(t, "/h")
		if _, err := cl.Join(ctx, room, nil); err != nil {
			t.Fatal(err)
		}
		publishNumbered(t, nc, room, 0, 5)
		harness.WaitEvent(t, cl, wait, "n=4", func(ev client.Event) bool {
			return ev.Type == client.TypeEvent && string(ev.Data) == `{"n":4}`
		})
		pos, ok := cl.Position(room)
		if !ok || pos.Seq == 0 || pos.Epoch == "" {
			t.Fatalf("position after 5 events = %+v, %v", pos, ok)
		}
		cl.Close()
		publishNumbered(t, nc, room, 5, 50) // the room keeps 20: pos is gone
		cl2 := c.Dial(t, "/h")
		j, err := waitStored(t, cl2, room, pos, nc)
		if err != nil {
			t.Fatal(err)
		}
		if j.Recovered || j.Position.Seq <= pos.Seq || j.Position.Epoch != pos.Epoch {
			t.Errorf("join since a position older than the history = %+v; want recovered false at the room's position", j)
		}
		publishNumbered(t, nc, room, 55, 1)
		ev := harness.WaitEvent(t, cl2, wait, "an event", func(ev client.Event) bool { return ev.Type == client.TypeEvent })
		if string(ev.Data) != `{"n":55}` {
			t.Errorf("first event after recovered:false = %s; want n=55, nothing replayed", ev.Raw)
		}
		// The client refetches with history: the room's last 20.
		page, err := cl2.History(ctx, room, client.HistoryQuery{Limit: 100})
		if err != nil || len(page.Events) != 20 || string(page.Events[19].Data) != `{"n":55}` {
			t.Errorf("history after recovered:false = %d events, %v", len(page.Events), err)
		}
	})
}

// waitStored joins room with since once the 50 messages published before
// are stored (they are published by core NATS, so storing may lag), so
// that the answer does not depend on timing.
func waitStored(t *testing.T, cl *client.Client, room string, since client.Position, nc *nats.Conn) (client.Joined, error) {
	t.Helper()
	harness.Eventually(t, wait, func() bool {
		m, err := nc.Request("rc.history."+room, []byte(`{"limit":1}`), 2*time.Second)
		return err == nil && bytes.Contains(m.Data, []byte(`{"n":54}`))
	}, "room %s: n=54 not stored", room)
	return cl.JoinSince(harness.Ctx(t, wait), room, nil, &since)
}

// publishNumbered publishes {"n":i} for i in [from, from+n) to room.
func publishNumbered(t *testing.T, nc *nats.Conn, room string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("rc.room." + room)
		m.Header.Set("Rc-Event", "tick")
		m.Data = []byte(`{"n":` + strconv.Itoa(i) + `}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// publisher publishes {"n":0}, {"n":1}, … to a room at a steady rate, from
// the test process straight to NATS, as a back-end would.
type publisher struct {
	sent atomic.Int64
	quit chan struct{}
	done chan struct{}
	err  atomic.Pointer[error]
}

func startPublisher(t *testing.T, nc *nats.Conn, room string, rate int) *publisher {
	p := &publisher{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		start := time.Now()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			// Catch up with the schedule, so the rate holds on a loaded
			// machine whose ticker is late.
			due := int64(time.Since(start).Seconds() * float64(rate))
			for n := p.sent.Load(); n < due; n++ {
				m := nats.NewMsg("rc.room." + room)
				m.Header.Set("Rc-Event", "tick")
				m.Data = []byte(`{"n":` + strconv.FormatInt(n, 10) + `}`)
				if err := nc.PublishMsg(m); err != nil {
					p.err.Store(&err)
					return
				}
				p.sent.Store(n + 1)
			}
		}
	}()
	t.Cleanup(func() { p.halt() })
	return p
}

func (p *publisher) halt() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}

// stop stops publishing and returns how many messages were published.
func (p *publisher) stop(t *testing.T) int {
	t.Helper()
	p.halt()
	if e := p.err.Load(); e != nil {
		t.Fatalf("publisher: %v", *e)
	}
	return int(p.sent.Load())
}

// tickLog records the n and seq of a room's tick events, in arrival order.
type tickLog struct {
	mu   sync.Mutex
	ns   []int
	seqs []uint64
}

func (l *tickLog) add(ev client.Event) {
	var n int
	if _, err := fmt.Sscanf(string(ev.Data), `{"n":%d}`, &n); err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ns = append(l.ns, n)
	l.seqs = append(l.seqs, ev.Seq)
}

func (l *tickLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ns)
}

func (l *tickLog) waitFor(t *testing.T, n int, d time.Duration) {
	t.Helper()
	harness.Eventually(t, d, func() bool { return l.len() >= n }, "got %d events; want %d", l.len(), n)
}

// check fails unless the log is exactly n = 0…total-1 with increasing seqs.
func (l *tickLog) check(t *testing.T, total int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := make(map[int]int, len(l.ns))
	for i, n := range l.ns {
		seen[n]++
		if i > 0 && l.seqs[i] <= l.seqs[i-1] {
			t.Errorf("event %d (n=%d): seq %d after %d", i, n, l.seqs[i], l.seqs[i-1])
		}
		if n != i {
			t.Errorf("event %d is n=%d: out of order, missing or repeated (first bad one shown)", i, n)
			break
		}
	}
	var missing, twice []int
	for n := range total {
		switch seen[n] {
		case 0:
			missing = append(missing, n)
		case 1:
		default:
			twice = append(twice, n)
		}
	}
	if len(l.ns) != total || len(missing) > 0 || len(twice) > 0 {
		t.Errorf("%d events for %d published: %d missing (first %v), %d repeated (first %v)",
			len(l.ns), total, len(missing), head(missing), len(twice), head(twice))
	}
}

func head(s []int) []int {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// recoveringClient is a client.Resilient in one history room, dialled at a
// node the test can change (target) and with a socket the test can cut.
type recoveringClient struct {
	r         *client.Resilient
	log       tickLog
	target    atomic.Pointer[harness.Node]
	notBefore atomic.Int64 // unix ns: no redial before
	mu        sync.Mutex
	conn      net.Conn // the current socket
	rejoins   chan map[string]client.Rejoin
	room      string
}

func dialRecovering(t *testing.T, n *harness.Node, room string) *recoveringClient {
	t.Helper()
	rc := &recoveringClient{room: room, rejoins: make(chan map[string]client.Rejoin, 4)}
	rc.target.Store(n)
	o := client.ResilientOptions{
		URL: func(ctx context.Context, _ int) (string, error) {
			if d := time.Until(time.Unix(0, rc.notBefore.Load())); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
			return rc.target.Load().URL("/h"), nil
		},
		Options: client.Options{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				rc.mu.Lock()
				rc.conn = c
				rc.mu.Unlock()
			}
			return c, err
		}},
		MinBackoff:  50 * time.Millisecond,
		MaxBackoff:  time.Second,
		EventBuffer: 16384,
		OnReconnect: func(_ *client.Client, m map[string]client.Rejoin) { rc.rejoins <- m },
	}
	r, err := client.DialResilient(harness.Ctx(t, wait), o)
	if err != nil {
		t.Fatalf("dial %s: %v", n.ID, err)
	}
	rc.r = r
	t.Cleanup(func() { r.Close() })
	go func() {
		for ev := range r.Events() {
			if ev.Type == client.TypeEvent && ev.Room == room && ev.Event == "tick" {
				rc.log.add(ev)
			}
		}
	}()
	if _, err := r.Join(harness.Ctx(t, wait), room, nil); err != nil {
		t.Fatalf("join %s on %s: %v", room, n.ID, err)
	}
	return rc
}

// dropSocket closes the TCP connection under the client: no close frame,
// as when a network goes away.
func (rc *recoveringClient) dropSocket() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.conn.Close()
}

func (rc *recoveringClient) waitReconnected(t *testing.T, d time.Duration) {
	t.Helper()
	harness.Eventually(t, d, func() bool { return rc.r.Reconnects() >= 1 }, "client did not reconnect within %v", d)
}

func (rc *recoveringClient) lastRejoin(t *testing.T) client.Rejoin {
	t.Helper()
	select {
	case m := <-rc.rejoins:
		return m[rc.room]
	case <-time.After(wait):
		t.Fatal("no re-join reported")
		return client.Rejoin{}
	}
}

// TestHistoryConfigErrors: a history setting the node cannot use stops it
// at start with a message that says what to change.
func TestHistoryConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{"history:\n  - rooms: \"chat.>\"\n    sise: 100\n", "line 3: field sise not found"},
		{"history:\n  - rooms: \"chat.>\"\n    ttl: 600\n", "time.Duration"},
		{"history:\n  - rooms: \"chat.>\"\n  - rooms: \"chat.x\"\n", `history entries "chat.>" and "chat.x" overlap`},
		{"history:\n  - rooms: \"chat..x\"\n", `history entry "chat..x"`},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		out, err := exec.CommandContext(ctx, harness.NodeBin(t), "--config", path, "--listen", "127.0.0.1:0",
			"--nats-listen", "none", "--data-dir", filepath.Join(dir, "js"), "--node-id", "cfg").CombinedOutput()
		cancel()
		if err == nil || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("config %q: exit %v, output %s; want an error containing %q", tc.yaml, err, out, tc.want)
		}
	}
}
