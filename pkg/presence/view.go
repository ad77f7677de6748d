package presence

import (
	"bytes"
	"cmp"
	"slices"
)

// gen orders a node's eras in a room: a restart bumps inc (the incarnation),
// re-entering a room after having no members there bumps epoch.
type gen struct{ inc, epoch uint64 }

func (a gen) less(b gen) bool { return a.inc < b.inc || a.inc == b.inc && a.epoch < b.epoch }

type changeKind uint8

const (
	joined changeKind = iota + 1
	left
	updated
)

// change is one difference a view operation made, with the room's size
// right after it.
type change struct {
	kind  changeKind
	m     Member
	count int
}

// maxPending bounds the deltas buffered while a node is being resynced; past
// it they are dropped (the snapshot or the next digest covers them).
const maxPending = 4096

// nodeView is what a view knows of one node's members in the room.
type nodeView struct {
	gen     gen
	seq     uint64 // last delta applied; sealed after an empty answer
	members map[string]Member
	heard   int64 // when the node was last heard from in this room (caller's clock)
	syncing bool  // a resync is asked for: buffer deltas in pending
	pending []delta
}

// view is one room's members on every node. It is a pure state machine: no
// I/O, no clock, no locks (the Tracker holds its lock around every call).
// Operations append what they changed to out, in order; an outcome asks the
// caller for a resync of that node.
type view struct {
	self  string // the local node: its members are set directly, never by deltas
	nodes map[string]*nodeView
	count int
}

type outcome struct {
	resync bool // ask the delta's sender for a snapshot
	fresh  bool // the sender started a new era here: tell it our digest
}

func newView(self string) *view {
	v := &view{self: self, nodes: make(map[string]*nodeView)}
	v.nodes[self] = &nodeView{members: make(map[string]Member)}
	return v
}

func (v *view) local() *nodeView { return v.nodes[v.self] }

// setLocal adds or updates a local member.
func (v *view) setLocal(m Member, out *[]change) { v.upsert(v.local(), m, out) }

// removeLocal removes a local member; it reports whether it was there.
func (v *view) removeLocal(session string, out *[]change) bool {
	return v.remove(v.local(), session, out)
}

// apply applies a delta from another node.
func (v *view) apply(d *delta, now int64, out *[]change) (o outcome) {
	if d.Node == v.self {
		return o
	}
	n := v.nodes[d.Node]
	g := d.gen()
	switch d.Op {
	case opDigest:
		if n != nil && g.less(n.gen) {
			return o // from an era we know is over
		}
		if n != nil {
			n.heard = now
			if n.gen == g && (n.seq >= d.Seq && len(n.members) == d.Count || n.seq > d.Seq) {
				return o // in step (or the digest crossed a newer delta)
			}
			if n.syncing {
				return o
			}
		}
		return v.startSync(d.Node, n, g, now, out)
	case opBye:
		if n == nil {
			n = &nodeView{members: make(map[string]Member)}
			v.nodes[d.Node] = n
		} else if g.less(n.gen) || n.gen == g && d.Seq <= n.seq {
			return o
		}
		v.clear(n, out)
		n.gen, n.seq, n.heard, n.syncing, n.pending = g, d.Seq, now, false, nil
		return o
	case opJoin, opUpdate:
		if d.Member == nil {
			return o
		}
	case opLeave:
	default:
		return o
	}
	if n != nil && g.less(n.gen) {
		return o // stale era
	}
	if n == nil || n.gen.less(g) {
		// A new era: whatever the node had here before is gone.
		if n == nil {
			n = &nodeView{members: make(map[string]Member)}
			v.nodes[d.Node] = n
		} else {
			v.clear(n, out)
		}
		n.gen, n.seq, n.heard, n.syncing, n.pending = g, 0, now, false, nil
		if d.Seq != 1 {
			n.syncing = true
			n.pending = append(n.pending, *d)
			return outcome{resync: true}
		}
		o.fresh = true
	}
	if d.Seq <= n.seq {
		return o // duplicate
	}
	n.heard = now
	if n.syncing {
		if len(n.pending) < maxPending {
			n.pending = append(n.pending, *d)
		}
		return o
	}
	if d.Seq != n.seq+1 {
		n.syncing = true
		n.pending = append(n.pending[:0], *d)
		o.resync = true
		return o
	}
	v.applyOp(n, d, out)
	n.seq = d.Seq
	return o
}

// startSync marks node as being resynced; a digest of a newer era also ends
// the old one.
func (v *view) startSync(node string, n *nodeView, g gen, now int64, out *[]change) outcome {
	if n == nil {
		n = &nodeView{members: make(map[string]Member), gen: g}
		v.nodes[node] = n
	} else if n.gen.less(g) {
		v.clear(n, out)
		n.gen, n.seq, n.pending = g, 0, nil
	}
	n.syncing, n.heard = true, now
	return outcome{resync: true}
}

func (v *view) applyOp(n *nodeView, d *delta, out *[]change) {
	switch d.Op {
	case opJoin, opUpdate:
		v.upsert(n, *d.Member, out)
	case opLeave:
		v.remove(n, d.Session, out)
	}
}

func (v *view) upsert(n *nodeView, m Member, out *[]change) {
	old, ok := n.members[m.Session]
	n.members[m.Session] = m
	switch {
	case !ok:
		v.count++
		*out = append(*out, change{joined, m, v.count})
	case !bytes.Equal(old.Meta, m.Meta) || old.User != m.User:
		*out = append(*out, change{updated, m, v.count})
	}
}

func (v *view) remove(n *nodeView, session string, out *[]change) bool {
	m, ok := n.members[session]
	if !ok {
		return false
	}
	delete(n.members, session)
	v.count--
	*out = append(*out, change{left, m, v.count})
	return true
}

// clear removes every member of n, in a stable order (so that tests and
// clients see the same sequence on every node).
func (v *view) clear(n *nodeView, out *[]change) {
	if len(n.members) == 0 {
		return
	}
	for _, m := range sortedMembers(n.members) {
		v.remove(n, m.Session, out)
	}
}

// applySnapshot replaces what the view knows of s.Node by its answer, then
// replays the deltas buffered meanwhile. Every answer ends the node's
// resync, stale or not; the replay may ask for another.
func (v *view) applySnapshot(s *snapshot, members []Member, now int64, out *[]change) (o outcome) {
	if s.Node == v.self {
		return o
	}
	n := v.nodes[s.Node]
	g := s.gen()
	if n == nil {
		n = &nodeView{members: make(map[string]Member)}
		v.nodes[s.Node] = n
	}
	if !g.less(n.gen) && !(g == n.gen && s.Seq < n.seq) {
		in := make(map[string]Member, len(members))
		for _, m := range members {
			in[m.Session] = m
		}
		for _, m := range sortedMembers(n.members) {
			if _, ok := in[m.Session]; !ok {
				v.remove(n, m.Session, out)
			}
		}
		for _, m := range members {
			v.upsert(n, m, out)
		}
		n.gen, n.seq = g, s.Seq
	}
	n.heard = now
	return v.endSync(n, s.Node, now, out)
}

// endSync clears n's resync and replays its buffered deltas in order.
func (v *view) endSync(n *nodeView, node string, now int64, out *[]change) (o outcome) {
	n.syncing = false
	pending := n.pending
	n.pending = nil
	slices.SortStableFunc(pending, func(a, b delta) int {
		if c := cmp.Compare(a.Inc, b.Inc); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	for i := range pending {
		pending[i].Node = node
		r := v.apply(&pending[i], now, out)
		o.resync = o.resync || r.resync
	}
	return o
}

// resyncFailed gives up on a resync that got no answer in time; the next
// digest from the node starts another.
func (v *view) resyncFailed(node string) {
	if n := v.nodes[node]; n != nil {
		n.syncing, n.pending = false, nil
	}
}

// dropIncarnation drops node if the view still knows it at incarnation inc:
// nothing answers for that incarnation any more, so it is gone.
func (v *view) dropIncarnation(node string, inc uint64, out *[]change) {
	n := v.nodes[node]
	if n == nil || n.gen.inc != inc || node == v.self {
		v.resyncFailed(node)
		return
	}
	v.dropNode(node, out)
}

// dropNode forgets node entirely: its members leave, and whatever it sends
// next is treated as coming from a node never heard of (resync unless it is
// the first delta of an era).
func (v *view) dropNode(node string, out *[]change) {
	n := v.nodes[node]
	if n == nil || node == v.self {
		return
	}
	v.clear(n, out)
	delete(v.nodes, node)
}

// dropNodeBefore drops node if the view knows it at an incarnation older
// than inc: that run of the node is over.
func (v *view) dropNodeBefore(node string, inc uint64, out *[]change) {
	if n := v.nodes[node]; n != nil && n.gen.inc < inc {
		v.dropNode(node, out)
	}
}

// expire drops the nodes not heard from since before cutoff.
func (v *view) expire(cutoff int64, out *[]change) {
	for _, node := range v.sortedNodes() {
		if n := v.nodes[node]; node != v.self && n.heard < cutoff {
			v.dropNode(node, out)
		}
	}
}

// members returns every member, by connected_at then session.
func (v *view) members() []Member {
	all := make([]Member, 0, v.count)
	for _, n := range v.nodes {
		for _, m := range n.members {
			all = append(all, m)
		}
	}
	sortMembers(all)
	return all
}

// withMembers lists the nodes that have members, self included, sorted.
func (v *view) withMembers() []string {
	var ns []string
	for node, n := range v.nodes {
		if len(n.members) > 0 {
			ns = append(ns, node)
		}
	}
	slices.Sort(ns)
	return ns
}

func (v *view) sortedNodes() []string {
	ns := make([]string, 0, len(v.nodes))
	for node := range v.nodes {
		ns = append(ns, node)
	}
	slices.Sort(ns)
	return ns
}

func sortedMembers(ms map[string]Member) []Member {
	all := make([]Member, 0, len(ms))
	for _, m := range ms {
		all = append(all, m)
	}
	sortMembers(all)
	return all
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		if c := cmp.Compare(a.ConnectedAt, b.ConnectedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Session, b.Session)
	})
}
