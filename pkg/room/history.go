package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/history"
)

// Room history (pkg/history has the design). What this file adds to the
// Hub, for rooms that keep history (Options.History):
//
//   - The room's NATS subscription is rc.stored.<room> (the stream's
//     republish, with sequence headers) instead of rc.room.<room>, and its
//     messages go through a history.Feed, which refills gaps before
//     anything is delivered; events carry "seq" and "epoch".
//   - A join (with or without `since`) is answered with an ack carrying
//     the room's position, and with since, "recovered" and a replay of what
//     the client missed. The seam: the joiner is registered as pending
//     before it becomes a member, so the fan-out holds its live events;
//     Feed.Attach gives the position P that splits what was delivered
//     before (≤ P) from after (> P); the replay covers (since, P]; then,
//     under the feed's lock, the held events above P are sent and the
//     joiner becomes an ordinary member. No gap, no duplicate.
//   - The `history` client message and rc.history.<room> for back-ends.
//
// Members that join without a join message (auto-joined rooms, back-end
// joins) get live events from their join on, with seq and epoch, but no
// ack: they learn their position from the first event.

const typeHistory = "history"

const (
	// historyTimeout bounds the JetStream reads of one join or history
	// request.
	historyTimeout = 5 * time.Second
	// replayFrame is the size at which a replay is cut into another
	// frame: several events per frame ('\n'-separated) spare the client
	// a frame header and a parse per event, without one huge frame.
	replayFrame = 16 << 10
	// maxHistoryReply bounds a history answer; the oldest events (newest,
	// when paging forward with after) are left out past it, and the
	// client pages on.
	maxHistoryReply = 256 << 10
	// historyQueue is the queue group of rc.history.>: one node answers.
	historyQueue = "rc-history"
)

// hubHistory is the Hub's history state: joiners whose live events are
// held until their replay is out, by room name.
type hubHistory struct {
	mu      sync.RWMutex
	pending map[string][]*joiner // values are replaced, never modified
}

// joiner is a session joining a history room. Guarded by the room's feed
// lock, except s and room.
type joiner struct {
	s    *Session
	room string
	// holding: events are kept in held (the replay is not out yet).
	// Otherwise the joiner waits for the room to pass floor, the position
	// it had on another node: events up to floor are dropped.
	holding bool
	held    []heldEvent
	floor   uint64
}

type heldEvent struct {
	seq uint64
	f   *frame.Prepared
}

func (hh *hubHistory) add(j *joiner) {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	if hh.pending == nil {
		hh.pending = make(map[string][]*joiner)
	}
	list := hh.pending[j.room]
	next := make([]*joiner, 0, len(list)+1)
	for _, o := range list {
		if o.s != j.s { // an earlier join of s that still waited for its floor
			next = append(next, o)
		}
	}
	hh.pending[j.room] = append(next, j)
}

func (hh *hubHistory) remove(j *joiner) {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	list := hh.pending[j.room]
	next := make([]*joiner, 0, len(list))
	for _, o := range list {
		if o != j {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		delete(hh.pending, j.room)
	} else {
		hh.pending[j.room] = next
	}
}

func (hh *hubHistory) of(room string) []*joiner {
	hh.mu.RLock()
	defer hh.mu.RUnlock()
	return hh.pending[room]
}

// roomHistory is the history side of a room with local members.
type roomHistory struct {
	h    *Hub
	r    *room
	st   *history.Stream
	feed *history.Feed
}

// newRoomHistory returns r's history state, nil if r keeps no history.
// Called by addMember when the room is created.
func (h *Hub) newRoomHistory(r *room) *roomHistory {
	st := h.o.History.For(r.name)
	if st == nil {
		return nil
	}
	rh := &roomHistory{h: h, r: r, st: st}
	rh.feed = st.NewFeed(r.name, rh.emit)
	return rh
}

// roomSubject is the subject a room's subscription listens on.
func (h *Hub) roomSubject(r *room) string {
	if r.hist != nil {
		return h.o.History.LiveSubject(r.name)
	}
	return h.o.Subjects.Room(r.name)
}

// deliverStored passes a message of a history room's subscription
// (rc.stored.<room>) to the room's feed. Runs on the room's shard.
func (h *Hub) deliverStored(m *nats.Msg) {
	name, ok := h.o.History.RoomFromLive(m.Subject)
	if !ok {
		return
	}
	h.mu.RLock()
	r := h.rooms[name]
	h.mu.RUnlock()
	if r == nil || r.hist == nil {
		return // the last member left while the message was queued
	}
	r.hist.feed.Live(m)
}

// emit is the fan-out of a history room (Feed's emit, under the feed's
// lock): fanout's loop, plus seq and epoch in the event and joiners' events
// held instead of sent. It runs on the room's shard goroutine, or on a
// catch-up worker (catchup.go says why that is safe).
func (rh *roomHistory) emit(m history.Msg, epoch string) {
	h, r := rh.h, rh.r
	members := *r.members.Load()
	if len(members) == 0 {
		return
	}
	start := time.Now()
	f := prepare(func(b []byte) []byte { return appendStoredEvent(b, r.name, m, epoch) })
	skip := m.Header.Get(HeaderNoEcho)
	pending := h.hist.of(r.name)
	n := 0
	for _, s := range members {
		if skip != "" && s.id == skip {
			continue
		}
		if j := findJoiner(pending, s); j != nil {
			if j.holding {
				j.held = append(j.held, heldEvent{m.Seq, f})
				continue
			}
			if m.Seq <= j.floor {
				continue
			}
			h.hist.remove(j) // past its position: an ordinary member now
		}
		if s.deliver(f) {
			n++
		}
	}
	h.outEvent.Add(float64(n))
	h.o.Metrics.FanoutSeconds.Observe(time.Since(start).Seconds())
}

func findJoiner(list []*joiner, s *Session) *joiner {
	for _, j := range list {
		if j.s == s {
			return j
		}
	}
	return nil
}

// joinHistory handles a join of a room that keeps history, or any join
// with since; it reports false for the others, which join handles. Called
// with s.mu held, like join.
func (s *Session) joinHistory(req *request) bool {
	h := s.hub
	name := req.Room
	st := h.o.History.For(name)
	if (st == nil && req.Since == nil) || s.roomIndex(name) >= 0 {
		// No history, or a join that only updates meta: nothing to replay.
		return false
	}
	j := &joiner{s: s, room: name, holding: true}
	if st != nil {
		h.hist.add(j) // before s is a member: no live event can pass its replay
	}
	r, fresh, code, msg := s.enter(name, req.Meta, false)
	if r == nil {
		h.hist.remove(j)
		s.fail(req.ID, code, msg)
		return true
	}
	if fresh {
		s.eventJoin(name)
	}
	rh := r.hist
	if rh == nil { // since for a room without history
		h.hist.remove(j)
		h.sendListWith(s, r, req.ID, func(b []byte) []byte { return appendHistoryAck(b, req.ID, nil, req.Since != nil, false) })
		return true
	}
	ctx, cancel := context.WithTimeout(h.ctx, historyTimeout)
	defer cancel()
	var at history.Position
	attached := true
	if err := rh.feed.Attach(ctx, func(p history.Position) { at = p }); err != nil {
		// The member still gets live events (the feed starts with the
		// next one), just no position: the client cannot recover.
		h.log.Warn("history: join without a position", "room", name, "session", s.id, "err", err)
		attached = false
	}
	var replay []history.Msg
	recovered := false
	if req.Since != nil && attached {
		var err error
		replay, recovered, err = rh.st.Replay(ctx, name, *req.Since, at)
		if err != nil {
			h.log.Warn("history: replay failed; the client refetches", "room", name, "session", s.id, "err", err)
		}
	}
	var pos *history.Position
	if attached {
		pos = &at
	}
	h.sendListWith(s, r, req.ID, func(b []byte) []byte { return appendHistoryAck(b, req.ID, pos, req.Since != nil, recovered) })
	s.sendReplay(name, replay, at.Epoch)
	floor := at.Seq
	if recovered && req.Since.Seq > floor {
		floor = req.Since.Seq
	}
	rh.feed.Do(func() {
		last := at.Seq
		for _, e := range j.held {
			if e.seq > floor {
				s.send(e.f)
			}
			last = e.seq
		}
		j.held, j.holding, j.floor = nil, false, floor
		if last >= floor {
			h.hist.remove(j) // from now on the fan-out sends to s directly
		}
	})
	return true
}

// sendReplay sends msgs to s, several events per frame, skipping those s
// published with "echo":false.
func (s *Session) sendReplay(room string, msgs []history.Msg, epoch string) {
	if len(msgs) == 0 {
		return
	}
	var b []byte
	n := 0
	flush := func() {
		if len(b) > 0 {
			s.send(frame.NewPrepared(frame.OpText, b))
			b = b[:0]
		}
	}
	for _, m := range msgs {
		if m.Header.Get(HeaderNoEcho) == s.id {
			continue
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = appendStoredEvent(b, room, m, epoch)
		n++
		if len(b) >= replayFrame {
			flush()
		}
	}
	flush()
	s.hub.outEvent.Add(float64(n))
}

// sendListWith is sendList for a join whose ack carries more than the id.
func (h *Hub) sendListWith(s *Session, r *room, id reqID, ack func(b []byte) []byte) {
	r.presMu.Lock()
	defer r.presMu.Unlock()
	members, count, countOnly := h.pres.View(r.name)
	if id.set {
		s.reply(ack)
	}
	h.outPresence.Inc()
	s.send(prepare(func(b []byte) []byte { return appendList(b, reqID{}, r.name, members, count, countOnly) }))
}

// history answers the `history` client message without blocking the
// session: the read runs on its own goroutine, within the rpc bound.
func (s *Session) history(req *request) {
	h := s.hub
	if !s.mayUse(req.Room) {
		s.fail(req.ID, CodeForbidden, fmt.Sprintf("room %s is not allowed for this session", quote(req.Room)))
		return
	}
	st := h.o.History.For(req.Room)
	if st == nil {
		s.fail(req.ID, CodeNotFound, fmt.Sprintf("room %s keeps no history", quote(req.Room)))
		return
	}
	if !h.natsUp() {
		s.fail(req.ID, CodeUnavailable, "the message bus is unavailable: retry shortly")
		return
	}
	select {
	case h.rpcSlots <- struct{}{}:
	default:
		s.fail(req.ID, CodeUnavailable, "too many requests in flight on this node: retry shortly")
		return
	}
	id, room := req.ID, req.Room
	q := history.Query{Limit: req.Limit, Before: req.Before, After: req.After}
	go func() {
		defer func() { <-h.rpcSlots }()
		ctx, cancel := context.WithTimeout(h.ctx, historyTimeout)
		defer cancel()
		p, err := st.Query(ctx, room, q)
		if err != nil {
			h.log.Debug("history query", "room", room, "err", err)
			s.fail(id, CodeUnavailable, "history is unavailable: retry shortly")
			return
		}
		s.reply(func(b []byte) []byte {
			b = append(b, `{"type":"history"`...)
			b = appendID(b, id)
			b = append(b, `,"room":`...)
			b = appendString(b, room)
			return appendPage(b, p, q.After > 0)
		})
	}()
}

// ServeHistory answers rc.history.<room> requests from back-ends, in one
// queue group across nodes. Request: an empty body or JSON {"limit",
// "before", "after"} (see history.Query). Answer: {"room","seq","epoch",
// "events":[...]} or {"error":{"code","message"}}. A no-op without
// Options.History; the subscription ends when the NATS connection does.
func (h *Hub) ServeHistory() error {
	if h.o.History == nil {
		return nil
	}
	subj := h.o.History.HistoryAll()
	_, err := h.nc.QueueSubscribe(subj, historyQueue, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		select {
		case h.rpcSlots <- struct{}{}:
		default:
			_ = m.Respond(appendHistoryError(nil, CodeUnavailable, "too many requests in flight on this node: retry shortly"))
			return
		}
		go func() {
			defer func() { <-h.rpcSlots }()
			_ = m.Respond(h.answerHistory(m))
		}()
	})
	if err != nil {
		return fmt.Errorf("room: subscribe %s: %w", subj, err)
	}
	// Requests sent once ServeHistory returns are answered.
	if err := h.nc.FlushTimeout(flushTimeout); err != nil {
		h.log.Warn("room: flush history subscription", "err", err)
	}
	return nil
}

// answerHistory builds the answer to one rc.history.<room> request.
func (h *Hub) answerHistory(m *nats.Msg) []byte {
	room, _ := h.o.History.RoomFromHistory(m.Subject)
	if err := checkRoom(room); err != nil {
		return appendHistoryError(nil, CodeBadRequest, err.Error())
	}
	st := h.o.History.For(room)
	if st == nil {
		return appendHistoryError(nil, CodeNotFound, fmt.Sprintf("room %s keeps no history", quote(room)))
	}
	var q history.Query
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &q); err != nil {
			return appendHistoryError(nil, CodeBadRequest, `the body must be empty or JSON {"limit":N,"before":SEQ,"after":SEQ}: `+err.Error())
		}
	}
	ctx, cancel := context.WithTimeout(h.ctx, historyTimeout)
	defer cancel()
	p, err := st.Query(ctx, room, q)
	if err != nil {
		code := CodeUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = CodeTimeout
		}
		return appendHistoryError(nil, code, "history is unavailable: "+err.Error())
	}
	b := append([]byte(nil), `{"room":`...)
	b = appendString(b, room)
	return appendPage(b, p, q.After > 0)
}

// appendStoredEvent builds the event of a stored message: appendEvent's
// message plus "seq" and "epoch".
//
// Hot path: once per history-room message per node.
func appendStoredEvent(b []byte, room string, m history.Msg, epoch string) []byte {
	event := m.Header.Get(HeaderEvent)
	if event == "" {
		event = "message"
	}
	b = appendEvent(b, room, event, m.Header.Get(HeaderFrom), m.Data)
	b = append(b[:len(b)-1], `,"seq":`...) // reopen the object
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	return append(b, '}')
}

// appendHistoryAck builds a join's ack: pos is the room's position (nil if
// unknown), recovered is shown when the join had since.
func appendHistoryAck(b []byte, id reqID, pos *history.Position, withSince, recovered bool) []byte {
	b = append(b, `{"type":"ack"`...)
	b = appendID(b, id)
	if pos != nil {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, pos.Seq, 10)
		b = append(b, `,"epoch":`...)
		b = appendString(b, pos.Epoch)
	}
	if withSince {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, recovered)
	}
	return append(b, '}')
}

// appendPage appends the fields of a history page and closes the object:
// ,"seq":N,"epoch":"E","events":[{"seq","event","data","from","time"}...]}.
// Past maxHistoryReply it leaves out the oldest events, or the newest when
// forward is set (a page read with after).
func appendPage(b []byte, p history.Page, forward bool) []byte {
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, p.Last, 10)
	b = append(b, `,"epoch":`...)
	b = appendString(b, p.Epoch)
	b = append(b, `,"events":[`...)
	events := make([][]byte, len(p.Msgs))
	total := 0
	for i, m := range p.Msgs {
		e := append([]byte(nil), `{"seq":`...)
		e = strconv.AppendUint(e, m.Seq, 10)
		event := m.Header.Get(HeaderEvent)
		if event == "" {
			event = "message"
		}
		e = append(e, `,"event":`...)
		e = appendString(e, event)
		e = append(e, `,"data":`...)
		e = appendData(e, m.Data)
		if from := m.Header.Get(HeaderFrom); from != "" {
			e = append(e, `,"from":`...)
			e = appendString(e, from)
		}
		if !m.Time.IsZero() {
			e = append(e, `,"time":`...)
			e = strconv.AppendInt(e, m.Time.UnixMilli(), 10)
		}
		events[i] = append(e, '}')
		total += len(events[i]) + 1
	}
	for total > maxHistoryReply && len(events) > 0 {
		if forward {
			total -= len(events[len(events)-1]) + 1
			events = events[:len(events)-1]
		} else {
			total -= len(events[0]) + 1
			events = events[1:]
		}
	}
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}

func appendHistoryError(b []byte, code, msg string) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return append(b, "}}"...)
}
