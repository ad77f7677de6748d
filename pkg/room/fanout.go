package room

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/frame"
)

// Fan-out: every room with local members has one NATS subscription,
// delivered into one of a few shard channels (Hub.shardFor); each shard is
// drained by one goroutine, so a room's messages keep their order and the
// node runs O(shards) goroutines whatever the number of rooms. A message is
// encoded once into an immutable frame.Prepared and the same frame is queued
// on every local member's connection.

// maxBatch bounds how many queued messages one shard takes at a time.
const maxBatch = 64

// shardScratch is one shard goroutine's reusable buffers.
type shardScratch struct {
	enc    []byte // encoding buffer; NewPrepared copies it
	batch  []*nats.Msg
	frames []*frame.Prepared
	skips  []string
}

// drainShard delivers the room messages of one shard, in order. Under load it
// takes what else is already queued (up to maxBatch) and fans a run of
// messages for the same room out member by member, so each member's frames
// are queued back to back and its connection writes them with one writev:
// syscalls, not encoding, are the fan-out budget (DESIGN.md, bench fanout).
func (h *Hub) drainShard(ch chan *nats.Msg) {
	defer h.wg.Done()
	sc := &shardScratch{enc: make([]byte, 0, 1024), batch: make([]*nats.Msg, 0, maxBatch)}
	for {
		select {
		case <-h.done:
			return
		case m := <-ch:
			if _, ok := h.o.Subjects.RoomFromSubject(m.Subject); !ok {
				// A history room (rc.stored.<room>): its feed numbers,
				// orders and refills one message at a time.
				h.deliverStored(m)
				continue
			}
			sc.batch = append(sc.batch[:0], m)
		more:
			for len(sc.batch) < maxBatch {
				select {
				case m := <-ch:
					sc.batch = append(sc.batch, m)
					if _, ok := h.o.Subjects.RoomFromSubject(m.Subject); !ok {
						break more // goes last, on its own
					}
				default:
					break more
				}
			}
			for i := 0; i < len(sc.batch); {
				j := i + 1
				for j < len(sc.batch) && sc.batch[j].Subject == sc.batch[i].Subject {
					j++
				}
				if j-i == 1 {
					h.deliverRoom(sc.batch[i], &sc.enc)
				} else {
					h.deliverRun(sc.batch[i:j], sc)
				}
				i = j
			}
			clear(sc.batch) // let the messages go
		}
	}
}

// deliverRun fans out several messages of one room, in order, member by
// member.
//
// Hot path: bench fanout under load; no allocation per member.
func (h *Hub) deliverRun(ms []*nats.Msg, sc *shardScratch) {
	name, _ := h.o.Subjects.RoomFromSubject(ms[0].Subject) // drainShard batches room subjects only
	h.mu.RLock()
	r := h.rooms[name]
	h.mu.RUnlock()
	if r == nil {
		return
	}
	members := *r.members.Load()
	if len(members) == 0 {
		return
	}
	start := time.Now()
	sc.frames, sc.skips = sc.frames[:0], sc.skips[:0]
	for _, m := range ms {
		event := m.Header.Get(HeaderEvent)
		if event == "" {
			event = "message"
		}
		b := appendEvent(sc.enc[:0], r.name, event, m.Header.Get(HeaderFrom), m.Data)
		sc.frames = append(sc.frames, frame.NewPrepared(frame.OpText, b))
		sc.skips = append(sc.skips, m.Header.Get(HeaderNoEcho))
		if cap(b) <= maxScratch {
			sc.enc = b[:0]
		}
	}
	n := 0
	for _, s := range members {
		for i, f := range sc.frames {
			if sc.skips[i] != "" && s.id == sc.skips[i] {
				continue
			}
			if !s.deliver(f) {
				break // closing: the rest of the run is moot
			}
			n++
		}
	}
	clear(sc.frames)
	h.outEvent.Add(float64(n))
	// One observation per message, each the run's time: the last member got
	// every frame of the run that late.
	d := time.Since(start).Seconds()
	for range ms {
		h.o.Metrics.FanoutSeconds.Observe(d)
	}
}

// deliverRoom finds the room a message is for and fans it out.
//
// Hot path: once per room message per node (BenchmarkFanout).
func (h *Hub) deliverRoom(m *nats.Msg, scratch *[]byte) {
	name, ok := h.o.Subjects.RoomFromSubject(m.Subject)
	if !ok {
		h.deliverStored(m) // a history room: rc.stored.<room>
		return
	}
	h.mu.RLock()
	r := h.rooms[name]
	h.mu.RUnlock()
	if r == nil {
		return // the last member left while the message was queued
	}
	h.fanout(r, m.Header, m.Data, scratch)
}

// fanout encodes one room message once and queues the same frame on every
// local member, skipping the sender if it asked for no echo. No lock is held
// while sending: the member list is a copy-on-write snapshot. Sessions that
// left after the snapshot may still get this message, which is harmless
// (it was published while they were members).
//
// Hot path: BenchmarkFanout; no allocation per member.
func (h *Hub) fanout(r *room, hdr nats.Header, data []byte, scratch *[]byte) {
	members := *r.members.Load()
	if len(members) == 0 {
		return
	}
	start := time.Now()
	event := hdr.Get(HeaderEvent)
	if event == "" {
		event = "message"
	}
	skip := hdr.Get(HeaderNoEcho)
	b := appendEvent((*scratch)[:0], r.name, event, hdr.Get(HeaderFrom), data)
	f := frame.NewPrepared(frame.OpText, b)
	if cap(b) <= maxScratch {
		*scratch = b[:0]
	}
	n := 0
	for _, s := range members {
		if skip != "" && s.id == skip {
			continue
		}
		if s.deliver(f) {
			n++
		}
	}
	h.outEvent.Add(float64(n))
	h.o.Metrics.FanoutSeconds.Observe(time.Since(start).Seconds())
}

// drainDirect delivers rc.session.<id> and rc.user.<user> messages.
func (h *Hub) drainDirect() {
	defer h.wg.Done()
	for {
		select {
		case <-h.done:
			return
		case m := <-h.direct:
			h.deliverDirect(m)
		}
	}
}

// deliverDirect sends a direct message, encoded once, to the session or to
// every local session of the user. Messages for sessions on other nodes are
// dropped here (see the trade-off in Start).
func (h *Hub) deliverDirect(m *nats.Msg) {
	var targets []*Session
	h.mu.RLock()
	if id, ok := h.o.Subjects.Tail(m.Subject, "session"); ok {
		if s := h.sessions[id]; s != nil {
			targets = []*Session{s}
		}
	} else if user, ok := h.o.Subjects.Tail(m.Subject, "user"); ok {
		targets = h.users[user] // replaced on change, never modified: safe to keep
	}
	h.mu.RUnlock()
	if len(targets) == 0 {
		return
	}
	event := m.Header.Get(HeaderEvent)
	if event == "" {
		event = "message"
	}
	f := prepare(func(b []byte) []byte { return appendEvent(b, "", event, m.Header.Get(HeaderFrom), m.Data) })
	for _, s := range targets {
		s.send(f)
	}
	h.outEvent.Add(float64(len(targets)))
}
