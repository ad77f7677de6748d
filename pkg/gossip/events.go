package gossip

import (
	"bytes"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// meta is a node's memberlist metadata (at most memberlist.MetaMaxSize =
// 512 bytes; node ids are at most 128).
type meta struct {
	Node string `json:"node"`
	Inc  uint64 `json:"inc"`
	// Leaving is set just before a graceful leave. memberlist tells a
	// leave from a failure only inside its own state (the Node its
	// callbacks get always says alive), so Close says it in the metadata
	// first, and NotifyLeave after that is a leave.
	Leaving bool `json:"leaving,omitempty"`
}

func encodeMeta(node string, inc uint64, leaving bool) []byte {
	b, _ := json.Marshal(meta{Node: node, Inc: inc, Leaving: leaving})
	return b
}

// decodeMeta reads a peer's metadata; a node without roomcast metadata
// gives the zero meta.
func decodeMeta(b []byte) meta {
	var m meta
	_ = json.Unmarshal(b, &m)
	return m
}

type eventKind uint8

const (
	evAlive eventKind = iota + 1
	evFailed
	evGone
)

// event is a copy of what memberlist reported: its *Node belongs to
// memberlist and may change once the callback returns.
type event struct {
	kind eventKind
	node string
	addr string
	meta []byte
}

// delegate is memberlist's Delegate (metadata only: roomcast sends nothing
// else over gossip), EventDelegate and ConflictDelegate. memberlist calls
// the event methods with its node lock held, so they only copy the node
// into the queue and return: no lock but c.mu, no channel send that can
// block, no call back into memberlist.
type delegate struct {
	c    *Cluster
	meta atomic.Pointer[[]byte]
}

func (d *delegate) NodeMeta(limit int) []byte {
	m := *d.meta.Load()
	if len(m) > limit {
		return nil
	}
	return m
}

func (d *delegate) NotifyMsg([]byte)                    {}
func (d *delegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *delegate) LocalState(bool) []byte              { return nil }
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.c.push(evAlive, n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.push(evAlive, n) }

// NotifyLeave: failed or left, which handle tells apart (see meta.Leaving).
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.c.push(evFailed, n) }

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("gossip: two nodes use the same node id; give each its own --node-id",
		"peer", existing.Name, "addr", existing.Address(), "other_addr", other.Address())
}

// push queues a copy of n and wakes deliver. Never blocks.
func (c *Cluster) push(kind eventKind, n *memberlist.Node) {
	if n.Name == c.o.Node {
		return
	}
	e := event{kind: kind, node: n.Name, addr: n.Address(), meta: bytes.Clone(n.Meta)}
	c.mu.Lock()
	c.queue = append(c.queue, e)
	if kind == evAlive {
		c.alive[e.node] = e
	} else {
		delete(c.alive, e.node)
	}
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// deliver makes the Listener calls, in order, until the Cluster stops.
func (c *Cluster) deliver() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.signal:
		}
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, e := range batch {
			select {
			case <-c.done:
				return
			default:
			}
			c.handle(e)
		}
	}
}

func (c *Cluster) handle(e event) {
	m := decodeMeta(e.meta)
	if e.kind == evFailed && c.leaving[e.node] {
		e.kind = evGone
	}
	delete(c.leaving, e.node)
	switch e.kind {
	case evAlive:
		if m.Leaving {
			c.leaving[e.node] = true
			return
		}
		c.countAlive(e.node, m.Inc)
		c.mu.Lock()
		_, wasFailed := c.failed[e.node]
		delete(c.failed, e.node)
		c.mu.Unlock()
		if wasFailed {
			c.log.Info("gossip: node is back", "peer", e.node, "addr", e.addr)
		} else {
			c.log.Debug("gossip: node alive", "peer", e.node, "addr", e.addr, "inc", m.Inc)
		}
		c.o.Listener.NodeAlive(e.node, m.Inc)
	case evFailed:
		c.mu.Lock()
		c.failed[e.node] = c.newRetry(e.addr)
		c.mu.Unlock()
		c.log.Warn("gossip: node failed", "peer", e.node, "addr", e.addr)
		c.countDown(e.node, c.events.Failed)
		c.o.Listener.NodeFailed(e.node)
	case evGone:
		c.mu.Lock()
		delete(c.failed, e.node)
		c.mu.Unlock()
		c.log.Info("gossip: node left", "peer", e.node, "addr", e.addr)
		c.countDown(e.node, c.events.Left)
		c.o.Listener.NodeGone(e.node)
	}
}

// forgetAfter: a node down this long is forgotten; one that comes back
// later with a new incarnation counts as joined, not restarted (as in
// pkg/presence).
const forgetAfter = 10 * time.Minute

// peer is what deliver has told of a node, for roomcast_peer_events_total.
type peer struct {
	inc    uint64 // the latest incarnation its metadata carried; 0 = unknown
	up     bool   // reported alive, not yet failed or gone
	downAt time.Time
}

// countAlive counts node joined if it was not up, and restarted if inc is
// newer than the incarnation it had, whether or not failure detection saw
// the old run die.
func (c *Cluster) countAlive(node string, inc uint64) {
	p := c.peers[node]
	if p == nil {
		p = &peer{}
		c.peers[node] = p
	}
	if !p.up {
		p.up = true
		c.events.Joined.Inc()
	}
	if inc > p.inc {
		if p.inc != 0 {
			c.events.Restarted.Inc()
		}
		p.inc = inc
	}
}

// countDown counts an up node failed or left (ev), and forgets the nodes
// down for forgetAfter: only a node going down adds to what is kept.
func (c *Cluster) countDown(node string, ev prometheus.Counter) {
	now := time.Now()
	if p := c.peers[node]; p != nil && p.up {
		p.up, p.downAt = false, now
		ev.Inc()
	}
	for n, p := range c.peers {
		if !p.up && now.Sub(p.downAt) > forgetAfter {
			delete(c.peers, n)
		}
	}
}
