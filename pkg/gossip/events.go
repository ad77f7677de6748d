package gossip

import (
	"bytes"
	"encoding/json"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
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
		c.o.Listener.NodeFailed(e.node)
	case evGone:
		c.mu.Lock()
		delete(c.failed, e.node)
		c.mu.Unlock()
		c.log.Info("gossip: node left", "peer", e.node, "addr", e.addr)
		c.o.Listener.NodeGone(e.node)
	}
}
