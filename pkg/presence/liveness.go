package presence

import (
	"encoding/json"
	"strconv"
	"time"
)

// Node liveness: when another node stops (crash, SIGKILL, partition), its
// members must leave every view, with a Left for each, within 5 s. Three
// signals feed the tracker:
//
//   - Heartbeats over NATS (this file). Every node publishes {node, inc} on
//     rc.presence.$hb every Options.Heartbeat (1 s) and watches everyone
//     else's; a node silent for DeadAfter (3 s) is gone. One message per
//     node per second, not per room, and it needs nothing but NATS, so
//     presence keeps its promise without gossip. It also measures what
//     presence depends on: whether the node's messages reach us.
//   - memberlist (pkg/gossip), when configured: NodeAlive on join or a new
//     incarnation in its metadata, NodeFailed when its failure detector
//     declares a node dead, NodeGone when a node leaves gracefully.
//   - The anti-entropy expiry (sync.go): a node silent in a room for 15 s
//     leaves it. The last resort, for nodes that send no heartbeats.
//
// With gossip, heartbeats keep running as a second opinion: NodeFailed is
// ignored while the node's heartbeats still arrive (heard within 1.5
// periods), since then only gossip between us is broken (a firewalled
// gossip port, a gossip-only partition) and its members are in fact still
// reachable; dropping them would flap every one of them out and back in.
// If the node is really dead, its heartbeats stop and it is dropped
// DeadAfter after the last one, so the second opinion costs no time. For
// the same reason, only a heartbeat revives a node that heartbeats watch.
//
// Deafness: if our own heartbeat has not come back for deafBeats periods,
// NATS is down or slow for us, and nobody else is blamed for the silence.
// When our heartbeat returns after such a gap, every node's clock starts
// afresh.
//
// Coming back: a node dropped and then heard from again (a healed
// partition, a NATS outage on its side) is asked, on
// rc.presence.$node.<inc>, to publish its digests at once; each digest of a
// room we share makes us resync it there (sync.go), so it returns with
// exactly its current members, never duplicated. Its own tracker does the
// same for us if it had dropped us.

// allIncarnations, as the bound of dropLocked, drops every incarnation.
const allIncarnations = ^uint64(0)

// peer is what liveness knows of another node. Guarded by Tracker.mu.
type peer struct {
	inc    uint64 // the latest incarnation known; 0 = unknown
	heard  int64  // its last heartbeat (tracker clock); 0 = never
	gone   bool   // its members were dropped; the next sign of life resyncs it
	goneAt int64

	// What the heartbeats alone say, for roomcast_peers and
	// roomcast_peer_events_total{source="heartbeat"}: up from a heartbeat
	// until a bye or DeadAfter of silence, whatever gossip says meanwhile
	// (gone may be set by NodeFailed while up still waits for the
	// heartbeats to run out), so that the gauge is always joined − left −
	// failed. hbInc is the latest incarnation a heartbeat or bye carried:
	// a restart gossip saw first is still counted once by heartbeats.
	up    bool
	hbInc uint64
}

func (t *Tracker) peerLocked(node string) *peer {
	p := t.peers[node]
	if p == nil {
		p = &peer{}
		t.peers[node] = p
	}
	return p
}

// NodeAlive tells the tracker that node runs as incarnation inc (0 if
// unknown): memberlist calls it on a join and on new metadata. A newer
// incarnation than the one known means the node restarted: the members of
// its previous run leave every view at once, before the new run sends
// anything. A node dropped earlier is asked for its digests, unless
// heartbeats watch it (then its next heartbeat does that).
func (t *Tracker) NodeAlive(node string, inc uint64) { t.alive(node, inc, false) }

// NodeFailed tells the tracker that a failure detector (memberlist)
// declared node dead. Its members leave every view, and the Listener hears
// Left for each, unless node's heartbeats still arrive: see the second
// opinion above.
func (t *Tracker) NodeFailed(node string) {
	if node == t.o.Node {
		return
	}
	now := t.now()
	t.mu.Lock()
	p := t.peers[node]
	fresh := t.o.Heartbeat > 0 && p != nil && !p.gone && p.heard != 0 && now-p.heard <= int64(t.o.Heartbeat*3/2)
	t.mu.Unlock()
	if fresh {
		t.log.Warn("presence: gossip reports a node dead but its heartbeats still arrive over NATS; keeping its members until they stop (is the gossip port blocked?)", "peer", node)
		return
	}
	t.gone(node, allIncarnations, "failed")
}

// NodeGone drops every member of node from every view, and the Listener
// hears Left for each: node left (memberlist reports a graceful leave) or
// must be treated as gone. If it was only cut off, its next heartbeat, delta
// or digest makes it resynced, so it comes back without duplicates.
func (t *Tracker) NodeGone(node string) { t.gone(node, allIncarnations, "left") }

// gone marks node gone and drops its members of incarnations before
// `before` from every view.
func (t *Tracker) gone(node string, before uint64, why string) {
	if node == t.o.Node {
		return
	}
	t.mu.Lock()
	p := t.peerLocked(node)
	if !p.gone {
		p.gone, p.goneAt = true, t.now()
	}
	drains, n := t.dropLocked(node, before)
	t.mu.Unlock()
	t.drainAll(drains)
	if n > 0 {
		t.log.Info("presence: node "+why+"; its members are gone", "peer", node, "members", n)
	}
}

// alive records a sign of life from node at incarnation inc: a heartbeat
// (hb) or a memberlist join or update.
func (t *Tracker) alive(node string, inc uint64, hb bool) {
	if node == t.o.Node {
		return
	}
	t.mu.Lock()
	p := t.peerLocked(node)
	if inc != 0 && inc < p.inc {
		t.mu.Unlock()
		return // a previous run, late
	}
	// A newer incarnation means the node restarted: members of its earlier
	// runs are gone. That holds even when this is the first we hear of
	// the node itself (p.inc == 0): its members may already be in views
	// from a snapshot or deltas that raced its first heartbeat.
	restarted := inc > p.inc
	if inc > p.inc {
		p.inc = inc
	}
	if hb {
		p.heard = t.now()
		t.countHeartbeatLocked(p, inc)
		if !p.up {
			p.up = true
			t.hbEvents.Joined.Inc()
		}
	}
	// Only a heartbeat revives a node that heartbeats watch: gossip may
	// reach a node whose presence cannot reach us.
	back := p.gone && (hb || t.o.Heartbeat < 0 || p.heard == 0)
	if back {
		p.gone = false
		if p.inc != 0 && !t.closed {
			t.askDigestsLocked(node, p.inc)
		}
	}
	var drains []*roomState
	var n int
	if restarted {
		drains, n = t.dropLocked(node, p.inc)
	}
	t.mu.Unlock()
	t.drainAll(drains)
	if n > 0 {
		t.log.Info("presence: node restarted; the members of its previous run are gone", "peer", node, "members", n)
	}
	if back {
		t.log.Info("presence: node is back; resyncing it", "peer", node)
	}
}

// dropLocked drops node's members of incarnations before `before` from
// every view, queueing the Listener calls; it returns the rooms to drain
// and how many members left.
func (t *Tracker) dropLocked(node string, before uint64) (drains []*roomState, n int) {
	for _, r := range t.rooms {
		var out []change
		r.v.dropNodeBefore(node, before, &out)
		n += len(out)
		if t.emitLocked(r, out) {
			drains = append(drains, r)
		}
	}
	return drains, n
}

func (t *Tracker) drainAll(rs []*roomState) {
	for _, r := range rs {
		t.drain(r)
	}
}

// askDigestsLocked asks node's incarnation inc to publish its digests now.
func (t *Tracker) askDigestsLocked(node string, inc uint64) {
	body, _ := json.Marshal(snapRequest{Node: t.o.Node, Digests: true})
	subject := t.deltaPrefix + "$node." + strconv.FormatUint(inc, 10)
	if err := t.nc.Publish(subject, body); err != nil {
		t.log.Debug("presence: ask for digests", "peer", node, "err", err)
	}
}

// liveness sends this node's heartbeats and watches everyone else's. It is
// the only consumer of t.hbs.
func (t *Tracker) liveness() {
	defer t.wg.Done()
	beat := time.NewTicker(t.o.Heartbeat)
	defer beat.Stop()
	// Checking four times a period bounds detection at DeadAfter plus a
	// quarter period.
	check := time.NewTicker(t.o.Heartbeat / 4)
	defer check.Stop()
	// The first beat goes out at once, so that a restart is seen at once.
	t.beat()
	for {
		select {
		case <-t.done:
			return
		case <-beat.C:
			t.beat()
		case m := <-t.hbs:
			t.onHeartbeat(m.Data)
		case <-check.C:
			t.checkPeers()
		}
	}
}

func (t *Tracker) beat() {
	t.mu.Lock()
	if !t.closed {
		t.heartbeatLocked(false)
	}
	t.mu.Unlock()
}

// heartbeatLocked publishes this node's heartbeat, or its last one (bye).
// Under t.mu, so that no heartbeat follows the bye.
func (t *Tracker) heartbeatLocked(bye bool) {
	body := t.hbBeat
	if bye {
		body, _ = json.Marshal(heartbeat{Node: t.o.Node, Inc: t.inc, Bye: true})
	}
	if err := t.nc.Publish(t.hbSubject, body); err != nil {
		t.log.Debug("presence: heartbeat", "err", err)
	}
}

func (t *Tracker) onHeartbeat(data []byte) {
	var hb heartbeat
	if err := json.Unmarshal(data, &hb); err != nil || hb.Node == "" {
		t.log.Debug("presence: bad heartbeat", "err", err)
		return
	}
	if hb.Node != t.o.Node {
		if hb.Bye {
			t.bye(hb.Node, hb.Inc)
			return
		}
		t.alive(hb.Node, hb.Inc, true)
		return
	}
	if hb.Inc != t.inc {
		t.log.Warn("presence: another process runs with this node id; presence will be wrong until one stops (give every node its own --node-id)", "inc", hb.Inc)
		return
	}
	now := t.now()
	t.mu.Lock()
	if t.selfHeard == 0 || now-t.selfHeard > int64(deafBeats*t.o.Heartbeat) {
		// We were deaf (or just started): the silence of others
		// meanwhile says nothing about them. Their clocks start now.
		for _, p := range t.peers {
			if p.heard != 0 {
				p.heard = now
			}
		}
	}
	t.selfHeard = now
	t.mu.Unlock()
}

// bye handles a node's last heartbeat: it closed, and its leaves are
// announced room by room; liveness stops watching that run.
func (t *Tracker) bye(node string, inc uint64) {
	t.mu.Lock()
	p := t.peerLocked(node)
	stale := inc < p.inc
	if !stale {
		p.inc = inc
		t.countHeartbeatLocked(p, inc)
		if p.up {
			p.up = false
			t.hbEvents.Left.Inc()
		}
	}
	t.mu.Unlock()
	if !stale {
		t.gone(node, inc+1, "left")
	}
}

// countHeartbeatLocked counts a restart when a heartbeat or bye carries a
// newer incarnation than the heartbeats knew of p.
func (t *Tracker) countHeartbeatLocked(p *peer, inc uint64) {
	if inc > p.hbInc {
		if p.hbInc != 0 {
			t.hbEvents.Restarted.Inc()
		}
		p.hbInc = inc
	}
}

// Peers returns how many other nodes the heartbeats consider alive: heard
// from, no bye since, and not silent for DeadAfter (roomcast_peers). A node
// gossip declared dead still counts until its heartbeats run out too (see
// peer.up); a deaf tracker blames nobody, so it keeps counting the nodes it
// heard before. 0 without heartbeats and after Close.
func (t *Tracker) Peers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0
	}
	n := 0
	for _, p := range t.peers {
		if p.up {
			n++
		}
	}
	return n
}

// checkPeers drops the nodes whose heartbeats have been silent for
// DeadAfter, unless we are deaf, and forgets long-gone ones.
func (t *Tracker) checkPeers() {
	now := t.now()
	t.mu.Lock()
	if t.closed || t.selfHeard == 0 || now-t.selfHeard > int64(deafBeats*t.o.Heartbeat) {
		t.mu.Unlock()
		return
	}
	type silence struct {
		node    string
		quiet   time.Duration
		members int
	}
	var silent []silence
	var drains []*roomState
	for node, p := range t.peers {
		quiet := p.heard != 0 && now-p.heard > int64(t.o.DeadAfter)
		if quiet && p.up {
			// Counted even when gossip had it dropped already.
			p.up = false
			t.hbEvents.Failed.Inc()
		}
		switch {
		case p.gone:
			if now-p.goneAt > int64(forgetAfter) {
				delete(t.peers, node)
			}
		case quiet:
			p.gone, p.goneAt = true, now
			d, n := t.dropLocked(node, allIncarnations)
			drains = append(drains, d...)
			silent = append(silent, silence{node, time.Duration(now - p.heard), n})
		}
	}
	t.mu.Unlock()
	t.drainAll(drains)
	for _, s := range silent {
		t.log.Info("presence: no heartbeat from node; its members are gone", "peer", s.node, "silent", s.quiet.Round(time.Millisecond), "members", s.members)
	}
}
