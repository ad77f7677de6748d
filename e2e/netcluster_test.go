package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

// netCluster is a NATS cluster and roomcast nodes on one harness.Net, each
// process in a namespace of its own (NATS as separate namespaces, like
// separate pods, so a node's death or isolation never takes a NATS server
// with it).
type netCluster struct {
	net    *harness.Net
	nats   []*harness.NATS
	nodeNS []*harness.NS
	nodes  []*harness.Node
}

// startNetCluster starts natsN NATS servers (JetStream, routed as one
// cluster) and nodeN nodes n1…nN gossiping with each other, with
// --keys-replicas natsN and the extra flags, and waits until all are ready.
func startNetCluster(t *testing.T, natsN, nodeN int, cfg harness.NodeConfig) *netCluster {
	t.Helper()
	c := &netCluster{net: harness.NewNet(t)}
	var natsNS []*harness.NS
	for i := range natsN {
		natsNS = append(natsNS, c.net.Add(fmt.Sprintf("nats%d", i+1)))
	}
	for i := range nodeN {
		c.nodeNS = append(c.nodeNS, c.net.Add(fmt.Sprintf("n%d", i+1)))
	}
	c.nats = harness.StartNATSCluster(t, natsNS...)
	for i, ns := range c.nodeNS {
		nc := cfg
		nc.ID = fmt.Sprintf("n%d", i+1)
		nc.NATS = harness.URLs(c.nats)
		nc.Args = append(append([]string{"--keys-replicas", strconv.Itoa(natsN)},
			harness.GossipArgs(ns, c.nodeNS)...), cfg.Args...)
		c.nodes = append(c.nodes, ns.LaunchNode(t, nc))
	}
	for _, n := range c.nodes {
		n.WaitReady(harness.StartTimeout)
	}
	return c
}

// addrs returns the nodes' addresses on the Net.
func (c *netCluster) addrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.Addr)
	}
	return a
}

// connectNATS opens a NATS connection from the test process into the Net.
func (c *netCluster) connectNATS(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(harness.URLs(c.nats), nats.SetCustomDialer(netDialer{c.net}), nats.Name("e2e test"))
	if err != nil {
		t.Fatalf("connect to the NATS cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// netDialer is a nats.CustomDialer into a Net.
type netDialer struct{ net *harness.Net }

func (d netDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.net.Dial(ctx, network, addr)
}

// watcher keeps what one client was told about one room, from its events
// alone, as a browser's reactive list would: session:list replaces the
// view, session:connected adds, session:disconnected removes. It records
// everything that would make such a list wrong. Fed on the client's reader
// goroutine (client.Options.OnEvent); read under mu.
type watcher struct {
	name string
	room string

	mu      sync.Mutex
	members map[string]string // session → user
	count   int               // count of the last connected/disconnected
	// faults: a list naming a session twice, a connected for a session
	// already in the view, a disconnected for one not in it.
	faults []string
	// gone records when each session:disconnected arrived.
	gone map[string]time.Time
	// events counts room events by event name.
	events map[string]int
	// history is the last historyLen presence events, for fault reports.
	history []string
	c       *client.Client
}

// historyLen bounds a watcher's presence history: enough to show the
// events around a fault in a room of a few sessions.
const historyLen = 40

func newWatcher(name, room string) *watcher {
	return &watcher{name: name, room: room, members: map[string]string{}, gone: map[string]time.Time{}, events: map[string]int{}}
}

// options returns client options that feed w.
func (w *watcher) options() *client.Options { return &client.Options{OnEvent: w.on} }

func (w *watcher) on(ev client.Event) {
	if ev.Room != w.room {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Type != client.TypeEvent {
		if len(w.history) == historyLen {
			w.history = w.history[1:]
		}
		w.history = append(w.history, now.Format("15:04:05.000")+" "+string(ev.Raw))
	}
	switch ev.Type {
	case client.TypeSessionList:
		w.members = map[string]string{}
		for _, m := range ev.Sessions {
			if _, dup := w.members[m.Session]; dup {
				w.faults = append(w.faults, fmt.Sprintf("%s: session:list names %s twice: %s", now.Format("15:04:05.000"), m.Session, ev.Raw))
			}
			w.members[m.Session] = m.User
		}
		w.count = len(ev.Sessions)
	case client.TypeSessionConnected:
		if _, dup := w.members[ev.Session]; dup {
			w.faults = append(w.faults, fmt.Sprintf("%s: session:connected for %s, already listed: %s", now.Format("15:04:05.000"), ev.Session, ev.Raw))
		}
		w.members[ev.Session] = ev.User
		w.count = ev.Count
	case client.TypeSessionDisconnected:
		if _, ok := w.members[ev.Session]; !ok {
			w.faults = append(w.faults, fmt.Sprintf("%s: session:disconnected for %s, not listed: %s", now.Format("15:04:05.000"), ev.Session, ev.Raw))
		}
		delete(w.members, ev.Session)
		if _, seen := w.gone[ev.Session]; !seen {
			w.gone[ev.Session] = now
		}
		w.count = ev.Count
	case client.TypeEvent:
		w.events[ev.Event]++
	}
}

// view returns the sorted sessions w's events add up to, and the last count.
func (w *watcher) view() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := make([]string, 0, len(w.members))
	for id := range w.members {
		s = append(s, id)
	}
	sort.Strings(s)
	return s, w.count
}

// sees reports whether w's view is exactly want (sorted) and the last
// count agrees.
func (w *watcher) sees(want []string) bool {
	v, n := w.view()
	return slices.Equal(v, want) && n == len(want)
}

func (w *watcher) faultList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.faults...)
}

func (w *watcher) eventCount(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events[name]
}

// goneAt returns when w heard session:disconnected for session.
func (w *watcher) goneAt(session string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.gone[session]
	return at, ok
}

// sessionsOf returns the sorted session ids of watchers.
func sessionsOf(ws ...*watcher) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.c.Welcome().Session)
	}
	sort.Strings(s)
	return s
}

// describeViews formats every watcher's view for a failure message.
func describeViews(ws []*watcher, want []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "want %d: %v", len(want), want)
	for _, w := range ws {
		v, n := w.view()
		fmt.Fprintf(&b, "\n  %s (session %s on %s): count %d, %d listed: %v", w.name, w.c.Welcome().Session, w.c.Welcome().Node, n, len(v), v)
	}
	return b.String()
}

// checkPresence asks every watcher's node for a fresh session:list and
// fails unless each names exactly want, once each.
func checkPresence(t *testing.T, ws []*watcher, want []string) {
	t.Helper()
	ctx := harness.Ctx(t, wait)
	for _, w := range ws {
		list, err := w.c.Presence(ctx, w.room)
		if err != nil {
			t.Errorf("%s: presence: %v", w.name, err)
			continue
		}
		var got []string
		for _, m := range list {
			got = append(got, m.Session)
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s (on %s): presence lists %v; want %v", w.name, w.c.Welcome().Node, got, want)
		}
	}
}

// checkFaults fails for every fault a watcher recorded, with the
// presence events that watcher received.
func checkFaults(t *testing.T, ws []*watcher) {
	t.Helper()
	for _, w := range ws {
		faults := w.faultList()
		for _, f := range faults {
			t.Errorf("%s (session %s on %s): %s", w.name, w.c.Welcome().Session, w.c.Welcome().Node, f)
		}
		if len(faults) > 0 {
			w.mu.Lock()
			t.Logf("%s's presence events:\n  %s", w.name, strings.Join(w.history, "\n  "))
			w.mu.Unlock()
		}
	}
}

// names maps session ids to watcher names, for reading fault reports.
func names(ws ...*watcher) string {
	var s []string
	for _, w := range ws {
		s = append(s, w.c.Welcome().Session+"="+w.name)
	}
	return strings.Join(s, " ")
}

// waitUntil polls cond every 20ms until it holds and returns how long that
// took, or fails after d with what and describe's account of the state
// then.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, describe func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %s", what, d, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
