package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// Chaos tests (issue 9, item 4): real node processes and a real NATS,
// faults injected from outside the way they happen in production (NATS
// restarted, a node SIGKILLed, a key raced for, a client that stops
// reading), and the contract checked from the clients' side. Each logs its
// measured figures on lines starting with "FIGURE" for RELIABILITY.md.

// payload is the data of every counted message: who published it and its
// sequence number in that publisher's stream.
type payload struct {
	P string `json:"p"`
	N int    `json:"n"`
}

// inbox records the counted messages one client received, from its reader
// goroutine (client.Options.OnEvent), so nothing is dropped or delayed by
// a full Events channel.
type inbox struct {
	event string // the event name counted

	mu    sync.Mutex
	got   map[payload]int // message → times received
	total int
	last  time.Time
	other []client.Event // events of other types worth checking (presence)
	kept  func(client.Event) bool
	bad   error // an undecodable counted message
}

func newInbox(event string, keep func(client.Event) bool) *inbox {
	return &inbox{event: event, got: map[payload]int{}, kept: keep}
}

func (in *inbox) onEvent(ev client.Event) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if ev.Type == client.TypeEvent && ev.Event == in.event {
		var p payload
		if err := json.Unmarshal(ev.Data, &p); err != nil || p.P == "" {
			in.bad = fmt.Errorf("undecodable %s: %s", in.event, ev.Raw)
			return
		}
		in.got[p]++
		in.total++
		in.last = time.Now()
		return
	}
	if in.kept != nil && in.kept(ev) {
		in.other = append(in.other, ev)
	}
}

// count returns how many counted messages arrived.
func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.total
}

// has reports whether message p arrived.
func (in *inbox) has(p payload) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.got[p] > 0
}

// check returns a description of what is wrong: an undecodable message, a
// duplicate, or a message of want missing.
func (in *inbox) check(want []payload) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.bad != nil {
		return in.bad
	}
	var missing []string
	for _, p := range want {
		if in.got[p] == 0 {
			missing = append(missing, fmt.Sprintf("%s#%d", p.P, p.N))
		}
	}
	for p, n := range in.got {
		if n > 1 {
			return fmt.Errorf("%s#%d received %d times", p.P, p.N, n)
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "…")
		}
		return fmt.Errorf("%d of %d messages missing: %s", len(missing), len(want), strings.Join(missing, " "))
	}
	return nil
}

// dialCounted connects with a fresh key minted on mintOn, dialling node at
// (they may differ: a key redeems anywhere), with an inbox attached.
func dialCounted(t *testing.T, mintOn, at *harness.Node, c harness.Claims, in *inbox) *client.Client {
	t.Helper()
	k := mintOn.MintKey(t, c)
	return at.DialWith(t, k.URL, &client.Options{OnEvent: in.onEvent})
}

// isCode reports whether err is the node's `error` reply with code.
func isCode(err error, code string) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Code == code
}

// readyz returns the node's /readyz status code, 0 if it did not answer.
func readyz(n *harness.Node) int {
	code, _, _ := n.Get("/readyz")
	return code
}

// TestChaosNATSRestart restarts NATS under load (item 4a). Two nodes, six
// clients in one room publishing continuously; NATS is shut down and
// started again on the same port and store. While it is down: /readyz is
// 503, publishes and POST /_/publish answer `unavailable`, upgrades answer
// 503 (and the key is not consumed), sessions stay open, nodes stay up.
// After: /readyz is 200 again, every room subscription is back (each
// client's publish reaches every other client, across nodes), keys minted
// before the outage still redeem, and nothing acked after recovery is
// lost.
func TestChaosNATSRestart(t *testing.T) {
	t.Parallel()
	ns := harness.StartLocalNATS(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "nr-a", NATS: ns.URL()},
		harness.NodeConfig{ID: "nr-b", NATS: ns.URL()},
	)
	const room = "chaos.nats"
	claims := harness.Claims{Allow: []string{"chaos.>"}}

	type member struct {
		name string
		c    *client.Client
		in   *inbox
	}
	var members []*member
	ctx := harness.Ctx(t, 3*time.Minute)
	for i := range 6 {
		n := nodes[i%2]
		m := &member{name: fmt.Sprintf("%s/%d", n.ID, i), in: newInbox("load", nil)}
		m.c = dialCounted(t, n, n, claims, m.in)
		if _, err := m.c.Join(ctx, room, nil); err != nil {
			t.Fatalf("join %s: %v", m.name, err)
		}
		members = append(members, m)
	}
	// A key for the outage: redeeming it while NATS is down must fail with
	// 503 without consuming it.
	spare := nodes[0].MintKey(t, claims)

	// Load: every member publishes a numbered message every 50 ms (20/s,
	// under the default 50/s session rate limit) until stop, recording
	// how each publish ended.
	type outcome struct {
		n     int
		err   error
		acked time.Time
	}
	var (
		mu       sync.Mutex
		outcomes = map[string][]outcome{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	const maxPerPublisher = 2000 // bound: 100 s at 20/s, far beyond the test
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for n := 1; n <= maxPerPublisher; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				err := m.c.Publish(ctx, room, "load", payload{P: m.name, N: n})
				mu.Lock()
				outcomes[m.name] = append(outcomes[m.name], outcome{n: n, err: err, acked: time.Now()})
				mu.Unlock()
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)
	// unavailableSince counts the publishers that got at least min
	// `unavailable` answers after t0.
	unavailableSince := func(t0 time.Time, min int) (publishers int) {
		mu.Lock()
		defer mu.Unlock()
		for _, list := range outcomes {
			n := 0
			for _, o := range list {
				if o.acked.After(t0) && isCode(o.err, client.CodeUnavailable) {
					n++
				}
			}
			if n >= min {
				publishers++
			}
		}
		return publishers
	}
	harness.Eventually(t, wait, func() bool {
		for _, m := range members {
			if m.in.count() < 30 {
				return false
			}
		}
		return true
	}, "load never reached every member")

	// --- NATS goes away.
	t0 := time.Now()
	ns.Stop()
	stopped := time.Now()
	var notReady time.Duration
	harness.Eventually(t, wait, func() bool {
		for _, n := range nodes {
			if readyz(n) == 200 {
				return false
			}
		}
		notReady = time.Since(stopped)
		return true
	}, "/readyz still 200 on a node after NATS stopped")
	// The outage lasts until every publisher has been refused 40 times
	// (about 2 s at 20/s): long enough for the nodes' reconnect loop
	// (0.5 s + up to 0.5 s jitter) to fail a few times, measured by the
	// clients rather than by a sleep.
	harness.Eventually(t, wait, func() bool { return unavailableSince(stopped, 40) == len(members) },
		"not every publisher got `unavailable` while NATS was down")
	for _, n := range nodes {
		resp, err := n.Post("/_/publish", map[string]any{"room": room, "event": "http", "data": 1})
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			t.Errorf("POST %s/_/publish during the outage: %v %+v; want 503", n.ID, err, resp)
		}
		if m := n.MustMetrics(t); m.Get("roomcast_nats_connected") != 0 {
			t.Errorf("%s: roomcast_nats_connected = %v during the outage, want 0", n.ID, m.Get("roomcast_nats_connected"))
		}
	}
	_, err := client.Dial(harness.Ctx(t, wait), nodes[1].URL(spare.URL), nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || http.Header(he.Header).Get("Retry-After") == "" {
		t.Errorf("dial with a key during the outage: %v; want HTTP 503 with Retry-After", err)
	}
	gap := time.Since(t0)

	// --- NATS comes back on the same port and store.
	ns.Start()
	restarted := time.Now()
	readyAt := map[string]time.Duration{}
	harness.Eventually(t, time.Minute, func() bool {
		for _, n := range nodes {
			if _, ok := readyAt[n.ID]; !ok && readyz(n) == 200 {
				readyAt[n.ID] = time.Since(restarted)
			}
		}
		return len(readyAt) == len(nodes)
	}, "nodes not ready within a minute of NATS coming back: %v", readyAt)
	var firstAck time.Duration
	harness.Eventually(t, wait, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, list := range outcomes {
			if o := list[len(list)-1]; o.err == nil && o.acked.After(restarted) {
				firstAck = o.acked.Sub(restarted)
				return true
			}
		}
		return false
	}, "no publish acked after NATS came back")
	recovered := time.Now()

	// Every publish acked after recovery reaches every member: both nodes
	// subscribed to the room again. Let the load run a little longer so
	// that there is traffic after recovery to count.
	harness.Eventually(t, wait, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, list := range outcomes {
			n := 0
			for _, o := range list {
				if o.err == nil && o.acked.After(recovered) {
					n++
				}
			}
			if n < 10 {
				return false
			}
		}
		return true
	}, "publishers did not resume after recovery")
	stopLoad()

	// Deliveries missed by acked publishes: in flight when NATS stopped,
	// or published while the member's own node was still reconnecting;
	// and publishes that reached no member at all.
	var afterRecovery, acked, unavailable, inFlight, reconnecting, reachedNone int
	var want []payload
	mu.Lock()
	for name, list := range outcomes {
		for _, o := range list {
			if o.err == nil && o.acked.After(recovered) {
				want = append(want, payload{P: name, N: o.n})
			}
		}
	}
	mu.Unlock()
	// Everything acked after recovery arrives everywhere; once it has, so
	// has everything older that was going to.
	for _, m := range members {
		harness.Eventually(t, wait, func() bool { return m.in.check(want) == nil }, "%s after recovery: %v", m.name, m.in.check(want))
	}
	mu.Lock()
	for name, list := range outcomes {
		for _, o := range list {
			switch {
			case o.err == nil && o.acked.After(recovered):
				afterRecovery++
				acked++
			case o.err == nil:
				acked++
				p := payload{P: name, N: o.n}
				var missed []string
				for _, m := range members {
					if m.in.has(p) {
						continue
					}
					missed = append(missed, m.name)
					node, _, _ := strings.Cut(m.name, "/")
					switch {
					case o.acked.After(restarted):
						// NATS was back, but this member's node may not have
						// been yet: then the message could not reach it.
						// Its node must not have been seen ready before.
						if o.acked.After(restarted.Add(readyAt[node])) {
							t.Errorf("publish %s#%d acked %v after NATS restarted, when %s was ready (%v), never reached %s",
								name, o.n, o.acked.Sub(restarted), node, readyAt[node], m.name)
						}
						reconnecting++
					case o.acked.Before(t0.Add(-time.Second)):
						// Well before the stop: nothing was in flight.
						t.Errorf("publish %s#%d acked %v before NATS stopped never reached %s", name, o.n, t0.Sub(o.acked), m.name)
					default:
						// In flight when the server went down: core NATS
						// is at most once.
						inFlight++
					}
				}
				if len(missed) == len(members) {
					reachedNone++
				}
			case isCode(o.err, client.CodeUnavailable):
				unavailable++
			default:
				t.Errorf("publish %s#%d: %v; want an ack or `unavailable`", name, o.n, o.err)
			}
		}
	}
	mu.Unlock()

	// Cross-node markers: each member's publish reaches all the others.
	var markers []payload
	for _, m := range members {
		p := payload{P: m.name + "/marker", N: 1}
		if err := m.c.Publish(ctx, room, "load", p); err != nil {
			t.Fatalf("marker from %s: %v", m.name, err)
		}
		markers = append(markers, p)
	}
	for _, m := range members {
		harness.Eventually(t, wait, func() bool { return m.in.check(markers) == nil }, "%s: markers: %v", m.name, m.in.check(markers))
		if err := m.c.Err(); err != nil {
			t.Errorf("%s: the session ended during the outage: %v", m.name, err)
		}
	}
	// The key refused during the outage was not consumed; a new one works.
	nodes[1].Dial(t, spare.URL)
	nodes[0].Connect(t, claims)
	for _, n := range nodes {
		if !n.Alive() {
			t.Errorf("node %s died", n.ID)
		}
		if m := n.MustMetrics(t); m.Get("roomcast_nats_connected") != 1 {
			t.Errorf("%s: roomcast_nats_connected = %v after recovery", n.ID, m.Get("roomcast_nats_connected"))
		}
	}
	ids := make([]string, 0, len(readyAt))
	for id := range readyAt {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var ready []string
	for _, id := range ids {
		ready = append(ready, fmt.Sprintf("%s %v", id, readyAt[id].Round(time.Millisecond)))
	}
	t.Logf("FIGURE nats-restart: /readyz 503 within %v of the stop; outage %v; /readyz 200 again after restart: %s; first publish acked %v after restart; publishes: %d acked (%d after recovery, all delivered to 6/6 members), %d unavailable; deliveries missed: %d in flight when NATS stopped, %d published while the member's node was still reconnecting; %d acked publishes reached no member",
		notReady.Round(time.Millisecond), gap.Round(time.Millisecond), strings.Join(ready, ", "),
		firstAck.Round(time.Millisecond), acked, afterRecovery, unavailable, inFlight, reconnecting, reachedNone)
}

// TestChaosNodeKilled SIGKILLs one of three nodes in the middle of a
// broadcast (item 4b). A service publishes numbered messages to a room
// over NATS, 100 a second; every node has three members. After the kill:
// the dead node's clients notice at once (Done) and reconnect to the other
// nodes with fresh keys, then receive everything published after their
// join; the other nodes' clients receive every message exactly once, in
// order, as if nothing happened; the surviving nodes stay up; and their
// members are eventually told that the dead node's sessions are gone.
func TestChaosNodeKilled(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "nk-a", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "nk-b", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "nk-c", NATS: ns.ClientURL()},
	)
	victim, survivors := nodes[0], nodes[1:]
	const room = "chaos.kill"
	claims := harness.Claims{Allow: []string{"chaos.>"}}
	ctx := harness.Ctx(t, 3*time.Minute)

	type member struct {
		name string
		node *harness.Node
		c    *client.Client
		in   *inbox
	}
	gone := func(ev client.Event) bool { return ev.Type == client.TypeSessionDisconnected && ev.Room == room }
	var members []*member
	for _, n := range nodes {
		for i := range 3 {
			m := &member{name: fmt.Sprintf("%s/%d", n.ID, i), node: n, in: newInbox("tick", gone)}
			m.c = dialCounted(t, n, n, claims, m.in)
			if _, err := m.c.Join(ctx, room, nil); err != nil {
				t.Fatalf("join %s: %v", m.name, err)
			}
			members = append(members, m)
		}
	}

	// The broadcast: a service publishing over NATS, numbered, with the
	// time each was handed to NATS.
	nc := bustest.Connect(t, ns)
	var (
		mu        sync.Mutex
		published []time.Time // published[n-1] = when message n was sent
		stop      = make(chan struct{})
		done      = make(chan struct{})
	)
	const maxTicks = 6000 // bound: 60 s at 100/s
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 1; n <= maxTicks; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			b, _ := json.Marshal(payload{P: "svc", N: n})
			m := nats.NewMsg("rc.room." + room)
			m.Header.Set("Rc-Event", "tick")
			m.Data = b
			mu.Lock()
			published = append(published, time.Now())
			mu.Unlock()
			if err := nc.PublishMsg(m); err != nil {
				t.Errorf("publish %d: %v", n, err)
				return
			}
		}
	}()
	stopPublisher := sync.OnceFunc(func() { close(stop); <-done })
	t.Cleanup(stopPublisher)
	sent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(published)
	}
	harness.Eventually(t, wait, func() bool {
		for _, m := range members {
			if m.in.count() < 50 {
				return false
			}
		}
		return true
	}, "the broadcast never reached every member")

	// --- SIGKILL, mid-broadcast.
	killedAt := time.Now()
	victim.Kill()
	sentAtKill := sent()

	// The victim's clients notice and reconnect elsewhere.
	type rejoin struct {
		m       *member
		noticed time.Duration
		back    time.Duration // kill → joined again on another node
		joined  time.Time
	}
	var (
		rejoins []*rejoin
		rwg     sync.WaitGroup
		rmu     sync.Mutex
	)
	for i, m := range members {
		if m.node != victim {
			continue
		}
		r := &rejoin{m: m}
		rejoins = append(rejoins, r)
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			select {
			case <-m.c.Done():
			case <-time.After(wait):
				t.Errorf("%s: no Done within %v of SIGKILL", m.name, wait)
				return
			}
			noticed := time.Since(killedAt)
			// A fresh key, minted and redeemed on a survivor.
			to := survivors[i%len(survivors)]
			in := newInbox("tick", nil)
			k, err := to.Post("/_/keys", claims)
			if err != nil || k.Status != http.StatusOK {
				t.Errorf("%s: mint on %s: %v %+v", m.name, to.ID, err, k)
				return
			}
			var key harness.Key
			_ = json.Unmarshal(k.Body, &key)
			c, err := client.Dial(ctx, to.URL(key.URL), &client.Options{OnEvent: in.onEvent})
			if err != nil {
				t.Errorf("%s: reconnect to %s: %v", m.name, to.ID, err)
				return
			}
			t.Cleanup(func() { c.Close() })
			if _, err := c.Join(ctx, room, nil); err != nil {
				t.Errorf("%s: rejoin on %s: %v", m.name, to.ID, err)
				return
			}
			rmu.Lock()
			r.noticed, r.back, r.joined = noticed, time.Since(killedAt), time.Now()
			r.m = &member{name: m.name + "→" + to.ID, node: to, c: c, in: in}
			rmu.Unlock()
		}()
	}
	rwg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Let the broadcast run on for 100 more messages, so every reconnected
	// client has traffic to count, then stop it.
	target := sent() + 100
	harness.Eventually(t, wait, func() bool { return sent() >= target }, "publisher stalled")
	stopPublisher()
	total := sent()

	// The survivors' members got everything, exactly once.
	all := make([]payload, total)
	for n := range all {
		all[n] = payload{P: "svc", N: n + 1}
	}
	for _, m := range members {
		if m.node == victim {
			continue
		}
		harness.Eventually(t, wait, func() bool { return m.in.check(all) == nil }, "%s: %v", m.name, m.in.check(all))
		if err := m.c.Err(); err != nil {
			t.Errorf("%s: disturbed by the kill of %s: %v", m.name, victim.ID, err)
		}
	}
	// The reconnected clients got everything published after their join.
	var noticed, back []string
	for _, r := range rejoins {
		var want []payload
		mu.Lock()
		for n, at := range published {
			if at.After(r.joined) {
				want = append(want, payload{P: "svc", N: n + 1})
			}
		}
		mu.Unlock()
		if len(want) == 0 {
			t.Errorf("%s: nothing published after the rejoin", r.m.name)
		}
		harness.Eventually(t, wait, func() bool { return r.m.in.check(want) == nil }, "%s: %v", r.m.name, r.m.in.check(want))
		noticed = append(noticed, r.noticed.Round(time.Millisecond).String())
		back = append(back, r.back.Round(time.Millisecond).String())
	}
	for _, n := range survivors {
		if !n.Alive() {
			t.Errorf("node %s died with %s", n.ID, victim.ID)
		}
	}

	// Presence: the survivors' members hear that the dead node's three
	// sessions left. DESIGN.md's goal is ≤ 5 s with memberlist; without it
	// the NATS-only fallback drops a silent node after 3 presence digest
	// intervals (15 s). The bound here is that fallback plus slack for a
	// loaded machine.
	deadSessions := map[string]bool{}
	for _, m := range members {
		if m.node == victim {
			deadSessions[m.c.Welcome().Session] = true
		}
	}
	var presenceLag time.Duration
	harness.Eventually(t, 45*time.Second, func() bool {
		for _, m := range members {
			if m.node == victim {
				continue
			}
			m.in.mu.Lock()
			left := 0
			for _, ev := range m.in.other {
				if deadSessions[ev.Session] {
					left++
				}
			}
			m.in.mu.Unlock()
			if left < len(deadSessions) {
				return false
			}
		}
		presenceLag = time.Since(killedAt)
		return true
	}, "the survivors' members were not told that %s's sessions left within 45 s", victim.ID)
	t.Logf("FIGURE node-kill: clients noticed the SIGKILL (Done) after %s; back in the room on another node (fresh key, rejoin) after %s; %d messages, %d sent before the kill: 6/6 survivor members got all, 0 lost, 0 duplicated; survivors told of the dead sessions (session:disconnected) after %v",
		strings.Join(noticed, ", "), strings.Join(back, ", "), total, sentAtKill, presenceLag.Round(100*time.Millisecond))
}

// TestChaosKeyRace redeems one key 50 times at once across three nodes,
// 100 times over (item 4d): exactly one connection gets in each round,
// the 49 others get HTTP 401 with a JSON body before the upgrade, and
// nothing else happens (no 503, no timeout), so a leaked key cannot be
// used twice however the race falls.
func TestChaosKeyRace(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "kr-a", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "kr-b", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "kr-c", NATS: ns.ClientURL()},
	)
	const rounds, racers = 100, 50
	wins := map[string]int{}
	var slowest time.Duration
	start := time.Now()
	for round := range rounds {
		k := nodes[round%len(nodes)].MintKey(t, harness.Claims{User: fmt.Sprintf("racer-%d", round)})
		var (
			gate    = make(chan struct{})
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			refused int
			other   []string
		)
		for i := range racers {
			n := nodes[i%len(nodes)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate // all 50 dial together
				c, err := client.Dial(harness.Ctx(t, wait), n.URL(k.URL), nil)
				mu.Lock()
				defer mu.Unlock()
				var he *client.HandshakeError
				switch {
				case err == nil:
					winners = append(winners, n.ID)
					c.Close()
				case errors.As(err, &he) && he.Status == http.StatusUnauthorized &&
					strings.HasPrefix(http.Header(he.Header).Get("Content-Type"), "application/json") && json.Valid(he.Body):
					refused++
				default:
					other = append(other, fmt.Sprintf("%s: %v", n.ID, err))
				}
			}()
		}
		t0 := time.Now()
		close(gate)
		wg.Wait()
		slowest = max(slowest, time.Since(t0))
		if len(winners) != 1 || refused != racers-1 || len(other) > 0 {
			t.Fatalf("round %d: %d winners %v, %d refused with 401, others %v; want exactly 1 winner and %d refusals",
				round, len(winners), winners, refused, other, racers-1)
		}
		wins[winners[0]]++
	}
	var per []string
	for _, n := range nodes {
		per = append(per, fmt.Sprintf("%s %d", n.ID, wins[n.ID]))
		m := n.MustMetrics(t)
		t.Logf("%s: redeem ok %v, invalid %v, error %v", n.ID, m.Get(`roomcast_keys_total{op="redeem",result="ok"}`),
			m.Get(`roomcast_keys_total{op="redeem",result="invalid"}`), m.Get(`roomcast_keys_total{op="redeem",result="error"}`))
	}
	t.Logf("FIGURE key-race: %d rounds × %d concurrent redemptions over 3 nodes: exactly 1 winner every round (wins: %s), %d × 401, 0 other outcomes; slowest round %v, all rounds %v",
		rounds, racers, strings.Join(per, ", "), rounds*(racers-1), slowest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestChaosSlowConsumer floods a room in which one client has stopped
// reading (item 4e). The node must cut that client with 4009 once its
// outgoing queue (--max-queue, default 1 MiB) is full, keep serving the
// room's other member at full speed, and keep its memory flat: five
// stalled clients in a row, each followed by more flood after its cut,
// leave the node's RSS where it was after a warm-up of the same traffic.
func TestChaosSlowConsumer(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	node := harness.StartNode(t, harness.NodeConfig{ID: "sc", NATS: ns.ClientURL()})
	nc := bustest.Connect(t, ns)
	const (
		room      = "chaos.flood"
		msgSize   = 4 << 10
		batch     = 128             // messages published before waiting for the healthy member
		maxFlood  = 64 << 20 / 4096 // bound per stalled client: 64 MiB of flood without a cut fails
		afterCut  = 4 << 20 / 4096  // flood that goes on after each cut: 4 MiB
		warmup    = 16 << 20 / 4096 // the same traffic before the baseline: 16 MiB
		stalled   = 5
		rcvBuffer = 4 << 10 // the stalled client's SO_RCVBUF: its kernel holds little
	)
	// The node's goroutines at rest: the loop's workers exit 10 s after
	// their last job, each with a 32 KiB read buffer, so memory is compared
	// only once they are gone again.
	idleGoroutines := node.MustMetrics(t).Get("go_goroutines")
	settle := func(what string) {
		t.Helper()
		var g float64
		if !harness.Poll(45*time.Second, func() bool {
			g = node.MustMetrics(t).Get("go_goroutines")
			return g <= idleGoroutines
		}) {
			t.Fatalf("%s: %v goroutines 45 s after the flood, %v at rest", what, g, idleGoroutines)
		}
	}
	healthy := newInbox("flood", func(ev client.Event) bool { return ev.Type == client.TypeSessionConnected })
	h := dialCounted(t, node, node, harness.Claims{Rooms: []string{room}}, healthy)
	harness.Eventually(t, wait, func() bool { return len(h.Welcome().Rooms) == 1 }, "no auto-join")
	if _, err := h.Presence(harness.Ctx(t, wait), room); err != nil {
		t.Fatal(err)
	}

	pad := strings.Repeat("x", msgSize-40)
	sent := 0
	var all []payload
	publish := func(n int) {
		t.Helper()
		for range n {
			sent++
			b, _ := json.Marshal(struct {
				payload
				Pad string `json:"pad"`
			}{payload{P: "svc", N: sent}, pad})
			m := nats.NewMsg("rc.room." + room)
			m.Header.Set("Rc-Event", "flood")
			m.Data = b
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
			all = append(all, payload{P: "svc", N: sent})
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// The healthy member keeps up: its queue never nears the bound.
		harness.Eventually(t, wait, func() bool { return healthy.count() >= sent }, "healthy member fell behind: %d of %d", healthy.count(), sent)
	}
	slowCut := func() float64 { return node.MustMetrics(t).Get("roomcast_slow_consumers_total") }

	for sent < warmup {
		publish(batch)
	}
	settle("after the warm-up")
	before, err := node.Proc()
	if err != nil {
		t.Fatal(err)
	}
	goalBefore := heapGoal(t, node)
	t.Logf("after %d MiB of warm-up flood: %v, heap goal after GC %.1f MiB", warmup*msgSize>>20, before, harness.MiB(int64(goalBefore)))

	var rounds []string
	for k := range stalled {
		session := fmt.Sprintf("stalled-%d", k)
		key := node.MintKey(t, harness.Claims{Rooms: []string{room}, Session: session})
		conn, r := dialStalled(t, node.URL(key.URL), rcvBuffer)
		harness.Eventually(t, wait, func() bool {
			healthy.mu.Lock()
			defer healthy.mu.Unlock()
			for _, ev := range healthy.other {
				if ev.Session == session {
					return true
				}
			}
			return false
		}, "%s never joined %s", session, room)

		cuts := slowCut()
		start, flooded := sent, 0
		for slowCut() == cuts {
			if flooded >= maxFlood {
				t.Fatalf("%s: %d MiB flooded past a client that reads nothing, and the node has not cut it", session, flooded*msgSize>>20)
			}
			publish(batch)
			flooded += batch
		}
		cutAfter := sent - start
		// The stalled client reads again: what the node had queued, then
		// the close frame.
		code, read, err := readUntilClose(conn, r, wait)
		if err != nil || code != client.CloseSlowConsumer {
			t.Errorf("%s: after reading %d bytes: close code %d, %v; want 4009", session, read, code, err)
		}
		for n := 0; n < afterCut; n += batch {
			publish(batch)
		}
		st, err := node.Proc()
		if err != nil {
			t.Fatal(err)
		}
		rounds = append(rounds, fmt.Sprintf("cut after %.1f MiB of flood (it had read %.1f MiB), rss %.1f MiB",
			float64(cutAfter*msgSize)/(1<<20), harness.MiB(int64(read)), harness.MiB(st.RSS)))
	}
	if err := healthy.check(all); err != nil {
		t.Errorf("healthy member: %v", err)
	}
	if err := h.Err(); err != nil {
		t.Errorf("healthy member was disconnected: %v", err)
	}
	m := node.MustMetrics(t)
	if got := m.Get("roomcast_slow_consumers_total"); got != stalled {
		t.Errorf("roomcast_slow_consumers_total = %v, want %d", got, stalled)
	}
	if got := m.Get(`roomcast_connections_closed_total{code="4009"}`); got != stalled {
		t.Errorf(`roomcast_connections_closed_total{code="4009"} = %v, want %d`, got, stalled)
	}
	settle("after the flood")
	after, err := node.Proc()
	if err != nil {
		t.Fatal(err)
	}
	// Flat, two ways, both measured at rest (the RSS sampled right after
	// each cut is only reported: it moves with the GC cycle and the busy
	// workers by ±3 MiB). (1) RSS against the warm-up baseline: the 40 MiB
	// of flood since would show up whole if the node buffered it for the
	// stalled clients; what may legitimately remain is the peak of one full
	// queue (1 MiB) twice over (GOGC=100 lets the heap reach twice the live
	// set before a collection) plus allocator and runtime noise, measured
	// at −0.3 to +5.1 MiB: 12 MiB is under a third of the flood.
	const tolerance = 12 << 20
	floodAfter := int64(sent-warmup) * msgSize
	// (2) The heap goal after a GC (about twice the live heap; see
	// heapGoal), which neither remembers the peak nor counts the race
	// detector's shadow memory: the stalled clients' queues are released
	// (kept, 5 full queues would add ~10 MiB of goal). Measured: −0.9 to
	// +1.7 MiB when the healthy member keeps up at once, up to +4.1 MiB
	// when it lags (a -race test process, the whole suite running) and the
	// node's buffers and pools grow with its backlog, however many clients
	// stalled (3 or 8 alike). Allowed: 6 MiB.
	goalAfter := heapGoal(t, node)
	if goalAfter > goalBefore+6<<20 {
		t.Errorf("heap goal after GC %.1f MiB after the flood, %.1f MiB before it: over the 6 MiB allowed",
			harness.MiB(int64(goalAfter)), harness.MiB(int64(goalBefore)))
	}
	raced := harness.NodeRaceBuilt(t)
	if raced {
		t.Logf("roomcast-node is built with -race: its RSS includes the race detector's shadow memory, not checked")
	}
	if growth := after.RSS - before.RSS; growth > tolerance && !raced {
		t.Errorf("RSS grew by %.1f MiB over %.1f MiB of flood past stalled clients (before %v, after %v); want ≤ %d MiB",
			harness.MiB(growth), harness.MiB(floodAfter), before, after, tolerance>>20)
	}
	t.Logf("FIGURE slow-consumer: %s; RSS before %.1f MiB, after %.1f MiB (%+.1f MiB) over %.0f MiB of flood; peak RSS %.1f MiB; heap goal after GC %.1f → %.1f MiB; healthy member got all %d messages",
		strings.Join(rounds, "; "), harness.MiB(before.RSS), harness.MiB(after.RSS), harness.MiB(after.RSS-before.RSS),
		harness.MiB(floodAfter), harness.MiB(after.HWM), harness.MiB(int64(goalBefore)), harness.MiB(int64(goalAfter)), sent)
}

// dialStalled opens a WebSocket that will not be read from: a raw
// connection with a small receive buffer, so the kernel absorbs little and
// the node's own queue fills. It returns the reader to use once reading
// resumes (the upgrade may have buffered the welcome).
func dialStalled(t *testing.T, url string, rcvBuf int) (net.Conn, io.Reader) {
	t.Helper()
	d := ws.Dialer{
		Timeout: wait,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
				}); err != nil {
					return err
				}
				return serr
			}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	conn, br, _, err := d.Dial(harness.Ctx(t, wait), url)
	if err != nil {
		t.Fatalf("dial %s: %v", client.RedactURL(url), err)
	}
	t.Cleanup(func() { conn.Close() })
	if br != nil {
		return conn, br
	}
	return conn, conn
}

// readUntilClose reads server frames until a close frame and returns its
// code, with the number of payload bytes read before it.
func readUntilClose(conn net.Conn, r io.Reader, d time.Duration) (code int, read int64, err error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return 0, read, fmt.Errorf("no close frame: %w", err)
		}
		if h.OpCode != ws.OpClose {
			n, err := io.CopyN(io.Discard, r, h.Length)
			read += n
			if err != nil {
				return 0, read, fmt.Errorf("no close frame: %w", err)
			}
			continue
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return 0, read, err
		}
		if len(p) < 2 {
			return client.CloseNoStatus, read, nil
		}
		return int(binary.BigEndian.Uint16(p)), read, nil
	}
}
