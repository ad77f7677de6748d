package room

import (
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/presence"
)

// Presence output to clients.
//
// Ordering: a member must never get a list older than a change it was told
// about, nor miss a change the list it got does not contain. Both Listener calls and sendList run under the room's presMu,
// and the tracker changes its view before it queues the call. So a list is
// either taken before a change (and the change's message follows it) or
// after (and contains it; the message may follow too, which clients treat
// as a no-op: session:connected for a listed session, session:disconnected
// for an unlisted one).

// sendList answers a join (ack with ackID, if set, then the list) or a
// presence request (the list, echoing listID).
func (h *Hub) sendList(s *Session, r *room, ackID, listID reqID) {
	r.presMu.Lock()
	defer r.presMu.Unlock()
	members, count, countOnly := h.pres.View(r.name)
	s.ack(ackID)
	h.outPresence.Inc()
	s.send(prepare(func(b []byte) []byte { return appendList(b, listID, r.name, members, count, countOnly) }))
}

// listener receives the tracker's changes and tells the room's local
// members. It is a separate type so that the Hub's API stays small.
type listener struct{ h *Hub }

func (l listener) Joined(room string, m presence.Member, count int) {
	// The joiner itself learns of its join from ack and session:list.
	l.h.presenceEvent(room, "session:connected", &m, count, m.Session)
}

func (l listener) Left(room string, m presence.Member, count int) {
	l.h.presenceEvent(room, "session:disconnected", &m, count, "")
}

func (l listener) Updated(room string, m presence.Member, count int) {
	l.h.presenceEvent(room, "session:updated", &m, count, "")
}

func (l listener) Counted(room string, count int) {
	r := l.h.lookup(room)
	if r == nil {
		return
	}
	f := prepare(func(b []byte) []byte { return appendCount(b, room, count) })
	l.h.toMembers(r, f, "")
}

func (l listener) Reset(room string, _ int, _ bool) {
	r := l.h.lookup(room)
	if r == nil {
		return
	}
	r.presMu.Lock()
	defer r.presMu.Unlock()
	// One list for everyone: it includes every member, so it is the same
	// bytes for each.
	members, count, countOnly := l.h.pres.View(room)
	f := prepare(func(b []byte) []byte { return appendList(b, reqID{}, room, members, count, countOnly) })
	l.h.sendAllLocked(r, f, "")
}

func (h *Hub) lookup(name string) *room {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rooms[name]
}

// presenceEvent encodes one presence change once and sends it to every local
// member of room except skip.
func (h *Hub) presenceEvent(room, typ string, m *presence.Member, count int, skip string) {
	r := h.lookup(room)
	if r == nil {
		return
	}
	f := prepare(func(b []byte) []byte { return appendPresence(b, typ, room, m, count) })
	h.toMembers(r, f, skip)
}

func (h *Hub) toMembers(r *room, f *frame.Prepared, skip string) {
	r.presMu.Lock()
	defer r.presMu.Unlock()
	h.sendAllLocked(r, f, skip)
}

func (h *Hub) sendAllLocked(r *room, f *frame.Prepared, skip string) {
	n := 0
	for _, s := range *r.members.Load() {
		if skip != "" && s.id == skip {
			continue
		}
		s.send(f)
		n++
	}
	h.outPresence.Add(float64(n))
}
