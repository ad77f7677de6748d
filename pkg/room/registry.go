package room

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/frame"
)

// The Hub's registry: rooms with local members (one NATS subscription
// each), sessions by id and by user, and the release of closed sessions.

// shardFor returns the delivery channel of a room: a room always maps to
// the same shard, so its messages keep their order.
func (h *Hub) shardFor(name string) chan *nats.Msg {
	// FNV-1a, inline: no hasher allocation.
	x := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		x ^= uint32(name[i])
		x *= 16777619
	}
	return h.shards[x%uint32(len(h.shards))]
}

// addMember puts s in room name, subscribing to rc.room.<name> if s is the
// first local member. The subscription is flushed to the server before
// returning, so that once the join is acknowledged the session receives
// every later publish.
func (h *Hub) addMember(name string, s *Session) (*room, error) {
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	r := h.rooms[name]
	fresh := r == nil
	if fresh {
		r = &room{name: name}
		r.hist = h.newRoomHistory(r)
		sub, err := h.nc.ChanSubscribe(h.roomSubject(r), h.shardFor(name))
		if err != nil {
			h.mu.Unlock()
			return nil, fmt.Errorf("room: subscribe %s: %w", name, err)
		}
		r.sub = sub
		r.members.Store(&[]*Session{})
		h.rooms[name] = r
		h.o.Metrics.Rooms.Set(float64(len(h.rooms)))
	}
	old := *r.members.Load()
	next := make([]*Session, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	r.members.Store(&next)
	h.mu.Unlock()
	if fresh {
		if err := h.nc.FlushTimeout(flushTimeout); err != nil {
			h.log.Debug("room: flush subscription", "room", name, "err", err)
		}
	}
	return r, nil
}

// removeMember takes s out of r; the last local member's leave ends the
// room's subscription.
func (h *Hub) removeMember(r *room, s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *r.members.Load()
	next := make([]*Session, 0, len(old))
	for _, m := range old {
		if m != s {
			next = append(next, m)
		}
	}
	if len(next) == len(old) {
		return
	}
	r.members.Store(&next)
	if len(next) == 0 && h.rooms[r.name] == r {
		if d, err := r.sub.Dropped(); err == nil {
			h.dropped += d
		}
		_ = r.sub.Unsubscribe()
		delete(h.rooms, r.name)
		h.o.Metrics.Rooms.Set(float64(len(h.rooms)))
	}
}

// register adds s to the session and user maps. A session id already in use
// here is taken over: the older connection is closed (1008) and released
// first, so that presence and direct messages see exactly one.
func (h *Hub) register(s *Session) {
	h.mu.Lock()
	old := h.sessions[s.id]
	h.mu.Unlock()
	if old != nil {
		h.log.Info("session id taken over by a new connection", "session", s.id, "user", s.user)
		old.closeWith(frame.ClosePolicy, "session taken over by a new connection")
		old.cleanup()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions[s.id] = s
	if s.user != "" {
		list := h.users[s.user]
		next := make([]*Session, len(list), len(list)+1)
		copy(next, list)
		h.users[s.user] = append(next, s)
	}
}

func (h *Hub) unregister(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
	if s.user == "" {
		return
	}
	list := h.users[s.user]
	next := make([]*Session, 0, len(list))
	for _, o := range list {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		delete(h.users, s.user)
	} else {
		h.users[s.user] = next
	}
}

// reap queues s for release by the reaper goroutine.
func (h *Hub) reap(s *Session) {
	if h.closed.Load() {
		// The reaper may be gone; nothing holds a lock of ours here that
		// cleanup needs except by the caller, so release off this stack.
		go s.cleanup()
		return
	}
	h.reapMu.Lock()
	h.reapQ = append(h.reapQ, s)
	h.reapMu.Unlock()
	select {
	case h.reapSig <- struct{}{}:
	default:
	}
}

func (h *Hub) reaper() {
	defer h.wg.Done()
	for {
		select {
		case <-h.done:
			h.reapAll()
			return
		case <-h.reapSig:
			h.reapAll()
		}
	}
}

func (h *Hub) reapAll() {
	h.reapMu.Lock()
	q := h.reapQ
	h.reapQ = nil
	h.reapMu.Unlock()
	for _, s := range q {
		s.cleanup()
	}
}
