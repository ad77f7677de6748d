package presence

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// maxPart bounds one snapshot part, in bytes of JSON, below NATS's default
// 1 MiB max payload with room to spare; smaller servers lower it further
// (see partSize).
const maxPart = 256 << 10

// sendLocked fills in the sender fields of d and publishes it on the room's
// delta subject. Called with t.mu held, so a room's deltas leave in sequence
// order. A failed publish (NATS down) is not retried: receivers see the gap
// or a digest mismatch and resync.
func (t *Tracker) sendLocked(r *roomState, d *delta) {
	d.Node, d.Inc, d.Epoch = t.o.Node, t.inc, r.epoch
	data, err := json.Marshal(d)
	if err != nil {
		t.log.Error("presence: encode delta", "room", r.name, "err", err)
		return
	}
	if err := t.nc.Publish(t.o.Subjects.Presence(r.name), data); err != nil {
		t.log.Debug("presence: publish delta", "room", r.name, "err", err)
	}
}

// sendDigestLocked publishes this node's digest for r.
func (t *Tracker) sendDigestLocked(r *roomState) {
	if n := len(r.v.local().members); n > 0 && !t.closed {
		t.sendLocked(r, &delta{Op: opDigest, Seq: r.seq, Count: n})
	}
}

// sendDigests publishes this node's digest for every room with local
// members, at once rather than at the next anti-entropy tick.
func (t *Tracker) sendDigests() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.rooms {
		if !r.building {
			t.sendDigestLocked(r)
		}
	}
}

// build gathers the first snapshot of r, then applies it and the deltas that
// raced it, and opens r to other joins. It never fails: what it misses, the
// resyncs and digests repair.
func (t *Tracker) build(ctx context.Context, r *roomState) {
	req, _ := json.Marshal(snapRequest{Node: t.o.Node, Room: r.name})
	got, _ := t.gather(ctx, t.snapPrefix+r.name, req, t.o.SnapshotWait, "")

	t.mu.Lock()
	subscribed := t.finishBuildLocked(r, got)
	t.mu.Unlock()
	if subscribed {
		// Before Join returns, make sure the server has the subscription:
		// a node joining right after us must find us in its snapshot.
		t.flush()
	}
}

// finishBuildLocked applies the gathered snapshot and the early deltas, and
// subscribes r to snapshot requests; it reports whether it subscribed.
func (t *Tracker) finishBuildLocked(r *roomState, got map[string]*assembly) (subscribed bool) {
	if !t.closed && t.rooms[r.name] == r {
		// Subscribed only now, so that our own request could not find us
		// and "no responders" could end it early.
		sub, err := t.nc.ChanSubscribe(t.snapPrefix+r.name, t.msgs)
		if err != nil {
			t.log.Warn("presence: subscribe snapshots", "room", r.name, "err", err)
		}
		r.snapSub = sub
		subscribed = err == nil
	}
	now := t.now()
	var out []change // not reported: the joining members get a full list
	var resync []string
	for node, a := range got {
		if !a.complete() {
			r.v.startSync(node, r.v.nodes[node], a.head.gen(), now, &out)
			resync = append(resync, node)
			continue
		}
		if o := r.v.applySnapshot(&a.head, a.members(), now, &out); o.resync {
			resync = append(resync, node)
		}
	}
	fresh := false
	for i := range r.early {
		o := r.v.apply(&r.early[i], now, &out)
		if o.resync {
			resync = append(resync, r.early[i].Node)
		}
		fresh = fresh || o.fresh
	}
	r.early = nil
	r.building = false
	close(r.ready)
	if t.closed || t.rooms[r.name] != r {
		return subscribed
	}
	if len(r.v.local().members) == 0 {
		t.dropRoomLocked(r)
		return false
	}
	r.countOnly = t.o.CountOnlyAbove > 0 && r.v.count > t.o.CountOnlyAbove
	for _, node := range resync {
		t.resyncLocked(r, node)
	}
	if fresh {
		t.sendDigestLocked(r)
	}
	return subscribed
}

// flush waits for the server to have processed what this connection sent;
// it is skipped while NATS is down (nothing to wait for).
func (t *Tracker) flush() {
	if t.nc.IsConnected() {
		if err := t.nc.FlushTimeout(t.o.SnapshotWait); err != nil {
			t.log.Debug("presence: flush", "err", err)
		}
	}
}

// assembly collects the parts of one node's snapshot answer.
type assembly struct {
	head  snapshot // the first part seen, members dropped
	parts map[int][]Member
	last  int // index of the last part; -1 until seen
}

func (a *assembly) complete() bool { return a.last >= 0 && len(a.parts) == a.last+1 }

func (a *assembly) members() []Member {
	var all []Member
	for i := 0; i <= a.last; i++ {
		all = append(all, a.parts[i]...)
	}
	return all
}

// gather sends req to subject with a fresh inbox and collects the snapshot
// answers until every expected node has answered completely, NATS reports
// no responders, or wait (or ctx) runs out. With target set only target is
// expected; otherwise the answers' Nodes lists say who else to wait for.
func (t *Tracker) gather(ctx context.Context, subject string, req []byte, wait time.Duration, target string) (got map[string]*assembly, noResponders bool) {
	got = make(map[string]*assembly)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	inbox := t.nc.NewInbox()
	// A sync subscription holds no goroutine.
	sub, err := t.nc.SubscribeSync(inbox)
	if err != nil {
		t.log.Debug("presence: snapshot inbox", "subject", subject, "err", err)
		return got, false
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := t.nc.PublishRequest(subject, inbox, req); err != nil {
		t.log.Debug("presence: snapshot request", "subject", subject, "err", err)
		return got, false
	}
	expected := make(map[string]bool)
	if target != "" {
		expected[target] = true
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			return got, true
		}
		if err != nil {
			return got, false
		}
		var s snapshot
		if err := json.Unmarshal(msg.Data, &s); err != nil || s.Node == "" {
			t.log.Debug("presence: bad snapshot answer", "subject", subject, "err", err)
			continue
		}
		if s.Node == t.o.Node || target != "" && s.Node != target {
			continue
		}
		a := got[s.Node]
		if a == nil {
			a = &assembly{head: s, parts: make(map[int][]Member), last: -1}
			a.head.Members = nil
			got[s.Node] = a
		}
		a.parts[s.Part] = s.Members
		if s.Last {
			a.last = s.Part
		}
		expected[s.Node] = true
		if target == "" {
			for _, n := range s.Nodes {
				expected[n] = true
			}
		}
		if t.allAnswered(got, expected) {
			return got, false
		}
	}
}

func (t *Tracker) allAnswered(got map[string]*assembly, expected map[string]bool) bool {
	for n := range expected {
		if n == t.o.Node {
			continue
		}
		if a := got[n]; a == nil || !a.complete() {
			return false
		}
	}
	return true
}

// answer replies to a snapshot request for room with this node's local
// members, split into parts that fit NATS's max payload. A node without
// members there answers an empty, sealed snapshot: nothing it sent in the
// room before counts any more.
func (t *Tracker) answer(m *nats.Msg, room string) {
	if m.Reply == "" {
		return
	}
	s := snapshot{Node: t.o.Node, Inc: t.inc}
	var members []Member
	t.mu.Lock()
	if r := t.rooms[room]; r != nil && len(r.v.local().members) > 0 {
		s.Epoch, s.Seq = r.epoch, r.seq
		members = sortedMembers(r.v.local().members)
		s.Nodes = r.v.withMembers()
	} else {
		s.Epoch, s.Seq = t.epochs.Load(), sealed
	}
	t.mu.Unlock()
	for _, part := range t.split(&s, members) {
		if err := t.nc.Publish(m.Reply, part); err != nil {
			t.log.Debug("presence: snapshot answer", "room", room, "err", err)
			return
		}
	}
}

// split encodes s with members in parts of at most partSize bytes each.
func (t *Tracker) split(s *snapshot, members []Member) [][]byte {
	limit := t.partSize()
	var parts [][]byte
	for i := 0; ; s.Part++ {
		j, size := i, 256+len(strings.Join(s.Nodes, ""))+8*len(s.Nodes)
		for j < len(members) {
			m := &members[j]
			size += 64 + len(m.Session) + 2*len(m.User) + len(m.Meta)
			if size > limit && j > i {
				break
			}
			j++
		}
		s.Members = members[i:j]
		s.Last = j == len(members)
		data, err := json.Marshal(s)
		if err != nil {
			t.log.Error("presence: encode snapshot", "err", err)
			return nil
		}
		parts = append(parts, data)
		if s.Last {
			return parts
		}
		i = j
	}
}

func (t *Tracker) partSize() int {
	if mp := int(t.nc.MaxPayload()); mp > 0 && mp/2 < maxPart {
		return mp / 2
	}
	return maxPart
}

// process applies what the presence subscriptions receive, in order. It is
// the only consumer of t.msgs.
func (t *Tracker) process() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case m := <-t.msgs:
			t.handle(m)
		}
	}
}

func (t *Tracker) handle(m *nats.Msg) {
	switch {
	case m.Subject == t.nodeSubject:
		var req snapRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || req.Room == "" && !req.Digests {
			t.log.Debug("presence: bad resync request", "err", err)
			return
		}
		if req.Digests {
			t.sendDigests()
			return
		}
		t.answer(m, req.Room)
	case strings.HasPrefix(m.Subject, t.snapPrefix):
		t.answer(m, m.Subject[len(t.snapPrefix):])
	case strings.HasPrefix(m.Subject, t.deltaPrefix):
		t.onDelta(m.Subject[len(t.deltaPrefix):], m.Data)
	}
}

func (t *Tracker) onDelta(room string, data []byte) {
	var d delta
	if err := json.Unmarshal(data, &d); err != nil || d.Node == "" {
		t.log.Debug("presence: bad delta", "room", room, "err", err)
		return
	}
	if d.Node == t.o.Node {
		return // our own, echoed by NATS
	}
	t.mu.Lock()
	r := t.rooms[room]
	if r == nil || t.closed {
		t.mu.Unlock()
		return
	}
	if r.building {
		if len(r.early) < maxPending {
			r.early = append(r.early, d)
		}
		t.mu.Unlock()
		return
	}
	var out []change
	o := r.v.apply(&d, t.now(), &out)
	if o.resync {
		t.resyncLocked(r, d.Node)
	}
	if o.fresh {
		// A node just entered the room: if it built its view before our
		// snapshot subscription existed, our digest makes it ask us.
		t.sendDigestLocked(r)
	}
	drain := t.emitLocked(r, out)
	t.mu.Unlock()
	if drain {
		t.drain(r)
	}
}

// resyncReq asks node, at incarnation inc, for its members of room.
type resyncReq struct {
	room, node string
	inc        uint64
}

// resyncLocked queues a resync of node in r; the view has marked it syncing.
func (t *Tracker) resyncLocked(r *roomState, node string) {
	n := r.v.nodes[node]
	if n == nil {
		return
	}
	select {
	case t.resyncs <- resyncReq{room: r.name, node: node, inc: n.gen.inc}:
		t.o.Metrics.PresenceResyncs.Inc()
		t.log.Debug("presence: resync", "room", r.name, "peer", node)
	default:
		r.v.resyncFailed(node)
	}
}

func (t *Tracker) resyncWorker() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case req := <-t.resyncs:
			t.resync(t.ctx, req)
		}
	}
}

func (t *Tracker) resync(ctx context.Context, req resyncReq) {
	body, _ := json.Marshal(snapRequest{Node: t.o.Node, Room: req.room})
	subject := t.deltaPrefix + "$node." + strconv.FormatUint(req.inc, 10)
	got, noResponders := t.gather(ctx, subject, body, t.o.ResyncTimeout, req.node)
	t.mu.Lock()
	r := t.rooms[req.room]
	if r == nil || t.closed {
		t.mu.Unlock()
		return
	}
	var out []change
	a := got[req.node]
	switch {
	case noResponders:
		// Nothing listens for that incarnation: it is gone.
		r.v.dropIncarnation(req.node, req.inc, &out)
	case a != nil && a.complete():
		if o := r.v.applySnapshot(&a.head, a.members(), t.now(), &out); o.resync {
			t.resyncLocked(r, req.node)
		}
	default:
		r.v.resyncFailed(req.node)
	}
	drain := t.emitLocked(r, out)
	t.mu.Unlock()
	if drain {
		t.drain(r)
	}
}

// timers runs anti-entropy and flushes throttled counts.
func (t *Tracker) timers() {
	defer t.wg.Done()
	ae := time.NewTicker(t.o.AntiEntropy)
	defer ae.Stop()
	ct := time.NewTicker(t.o.CountInterval)
	defer ct.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-ae.C:
			t.antiEntropy()
		case <-ct.C:
			t.flushCounts()
		}
	}
}

// antiEntropy publishes this node's digest for every room it has members in,
// and drops the nodes that have been silent in a room for expiryIntervals.
func (t *Tracker) antiEntropy() {
	cutoff := t.now() - int64(expiryIntervals*t.o.AntiEntropy)
	var drains []*roomState
	t.mu.Lock()
	for _, r := range t.rooms {
		if r.building {
			continue
		}
		t.sendDigestLocked(r)
		var out []change
		r.v.expire(cutoff, &out)
		if t.emitLocked(r, out) {
			drains = append(drains, r)
		}
	}
	t.mu.Unlock()
	for _, r := range drains {
		t.drain(r)
	}
}
