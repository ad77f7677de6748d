package room

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/names"
)

// Identity is who a connection is, as established before the upgrade (key
// claims, a continuous route, or the auth hook).
type Identity struct {
	// Session is a pre-assigned session id (key claim); empty or not a
	// valid subject token (names.ValidToken) means generate one.
	Session string
	User    string
	// Meta is the session's metadata (JSON, ≤ 4 KiB), shown in presence
	// and sent to back-ends in Rc-Meta.
	Meta json.RawMessage
	// Rooms are joined right after welcome. They are allowed for join and
	// publish even if Allow does not match them: whoever granted the
	// identity chose them.
	Rooms []string
	// Allow is what else the session may join and publish to. Nil allows
	// nothing beyond Rooms; names.All() allows every room.
	Allow *names.Patterns
	// Route is the continuous route the connection came in on, if any.
	Route string
	// Remote is the client's address (host:port) as the node sees it, for
	// the connect event.
	Remote string
}

// Session is one client connection's state in the Hub.
//
// Memory: a Session is about 250 bytes plus its strings and joined-room
// slice; it owns no goroutine, timer or NATS subscription (direct messages
// arrive through the Hub's two wildcard subscriptions).
//
// Concurrency: Receive calls are serialized by the caller; mu also
// serializes them with the release after Closed. Other goroutines (fan-out,
// presence, rpc replies) only use the immutable fields and conn.
type Session struct {
	hub  *Hub
	conn Conn

	// Immutable after Open.
	id, user, route, remote string
	meta                    json.RawMessage // compact
	allow                   *names.Patterns
	connectedAt             int64 // unix ms

	// auto are the rooms granted beyond allow: valid rooms from
	// Identity.Rooms, plus those a back-end joined the session to
	// (rc.control.join). Guarded by mu.
	auto []string

	closed atomic.Bool // Closed was called or a send failed: release pending
	// closing is the close code and reason, set once by whoever closes
	// first (the Hub with its reason, or Closed with the loop's code), for
	// the close event.
	closing atomic.Pointer[closeInfo]
	// hold queues frames sent to s before its welcome (see Open); nil
	// once the welcome is out.
	hold atomic.Pointer[holdQueue]

	mu        sync.Mutex
	cleaned   bool    // released: every later call is a no-op
	announced bool    // the connect event went out: leave and close events follow
	rooms     []*room // joined rooms, in join order

	// Token bucket (see RateLimit), touched only inside Receive.
	tokens  float64
	last    int64 // Hub.clock of the last refill
	strikes int32
}

// Open makes the session for a new connection: it joins Identity.Rooms, then
// sends welcome, then a session:list per room (or an error without id for a
// room it could not join). Because the rooms are joined first, a message
// published to one of them once the client holds the welcome reaches it;
// whatever reaches the session before its welcome is out (room messages,
// presence, direct messages) is held and sent right after it. Called once
// per connection, before any Receive.
func (h *Hub) Open(id Identity, c Conn) *Session {
	s := &Session{
		hub:         h,
		conn:        c,
		id:          id.Session,
		user:        id.User,
		route:       id.Route,
		remote:      id.Remote,
		meta:        compactJSON(id.Meta),
		allow:       id.Allow,
		connectedAt: time.Now().UnixMilli(),
		tokens:      h.burst,
		last:        h.clock(),
	}
	// Held until Open returns: a Closed that comes meanwhile (the loop may
	// call it as soon as the welcome is queued) releases s only after it is
	// registered, so nothing is left behind.
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(id.Meta) > 0 && s.meta == nil && string(id.Meta) != "null" {
		h.log.Warn("session meta is not valid JSON; dropped", "user", id.User)
	}
	if !names.ValidToken(s.id) {
		if s.id != "" {
			h.log.Warn("pre-assigned session id is not a valid subject token; generated one", "user", id.User)
		}
		s.id = nuid.Next()
	}
	var bad []error
	for _, r := range id.Rooms {
		if err := checkRoom(r); err != nil {
			bad = append(bad, err)
			continue
		}
		if !slices.Contains(s.auto, r) {
			s.auto = append(s.auto, r)
		}
	}
	if h.closed.Load() {
		c.Close(frame.CloseGoingAway, "node is shutting down")
		s.closed.Store(true)
		s.cleaned = true
		return s
	}
	s.hold.Store(&holdQueue{})
	h.register(s)
	type outcome struct {
		r         *room
		code, msg string
	}
	joined := make([]outcome, 0, len(s.auto))
	for _, name := range s.auto {
		if s.closed.Load() {
			break
		}
		r, _, code, msg := s.enter(name, nil, false)
		joined = append(joined, outcome{r, code, msg})
	}
	pingSeconds := int64((h.o.PingInterval + time.Second - 1) / time.Second)
	err := c.Send(prepare(func(b []byte) []byte { return appendWelcome(b, s, h.o.Node, pingSeconds) }))
	s.releaseHold(err == nil)
	if err != nil {
		s.markClosed() // registered and maybe in rooms: the reaper releases it
		return s
	}
	h.outReply.Inc()
	s.announced = true
	s.eventConnect()
	for _, o := range joined {
		if o.r != nil {
			s.eventJoin(o.r.name)
		}
	}
	for _, err := range bad {
		s.fail(reqID{}, CodeBadRequest, err.Error())
	}
	for _, o := range joined {
		if o.r == nil {
			s.fail(reqID{}, o.code, o.msg)
			continue
		}
		h.sendList(s, o.r, reqID{}, reqID{})
	}
	h.log.Debug("session open", "session", s.id, "user", s.user)
	return s
}

// holdQueue keeps the frames sent to a session before its welcome.
type holdQueue struct {
	mu     sync.Mutex
	frames []*frame.Prepared
	done   bool
}

// held queues f if s is still waiting for its welcome to go out, and
// reports whether it did; otherwise the caller sends f itself. Small enough
// to inline: on the fan-out's hot path it is one atomic load.
func (s *Session) held(f *frame.Prepared) bool {
	q := s.hold.Load()
	return q != nil && q.add(f)
}

// deliver queues a room frame on s: held while its welcome is not out yet,
// else sent. It reports false when the connection is closing (and marks the
// session closed), true otherwise.
//
// Hot path: once per member per room message (BenchmarkFanout).
func (s *Session) deliver(f *frame.Prepared) bool {
	if s.held(f) {
		return true
	}
	if err := s.conn.Send(f); err != nil {
		s.markClosed()
		return false
	}
	return true
}

func (q *holdQueue) add(f *frame.Prepared) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return false
	}
	q.frames = append(q.frames, f)
	return true
}

// releaseHold sends the held frames (or drops them if the welcome failed),
// then lets frames through. A frame queued while the held ones are sent is
// sent in the next round, so nothing overtakes a held frame.
func (s *Session) releaseHold(send bool) {
	q := s.hold.Load()
	for {
		q.mu.Lock()
		fs := q.frames
		q.frames = nil
		if len(fs) == 0 || !send {
			q.done = true
			q.mu.Unlock()
			break
		}
		q.mu.Unlock()
		for _, f := range fs {
			if err := s.conn.Send(f); err != nil {
				s.markClosed()
			}
		}
	}
	s.hold.Store(nil)
}

// ID is the session id.
func (s *Session) ID() string { return s.id }

// User is the session's user.
func (s *Session) User() string { return s.user }

// Receive handles one complete client text message. Never concurrent for one
// session; text is only valid during the call (everything kept is copied).
// Every message gets an answer or an error; none is dropped silently.
func (s *Session) Receive(text []byte) {
	if s.closed.Load() {
		return
	}
	defer s.recoverPanic()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cleaned {
		return
	}
	limited := !s.takeToken()
	var req request
	err := decodeRequest(text, &req)
	if limited {
		s.rateLimited(req.ID)
		return
	}
	if err != nil {
		s.hub.inInvalid.Inc()
		s.fail(req.ID, CodeBadRequest, err.Error())
		return
	}
	if c := s.hub.in[req.Type]; c != nil {
		c.Inc()
	} else {
		s.hub.inInvalid.Inc()
	}
	s.dispatch(&req)
}

// ReceiveBinary answers a binary frame with bad_request and keeps the
// connection: the protocol is JSON in text frames.
func (s *Session) ReceiveBinary(data []byte) {
	if s.closed.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cleaned {
		return
	}
	s.hub.inInvalid.Inc()
	if !s.takeToken() {
		s.rateLimited(reqID{})
		return
	}
	s.fail(reqID{}, CodeBadRequest, "binary frames are not supported: send JSON text frames")
}

// Closed tells the Hub the connection is gone: the session leaves every
// room (peers hear session:disconnected) and is released. Idempotent, and
// safe to call from inside Conn.Send or Conn.Close (the loop does): the
// release runs on the Hub's reaper goroutine, never on the caller's stack,
// so it cannot deadlock on a lock the caller holds. code is the close code,
// for logs and the close event.
func (s *Session) Closed(code uint16) {
	s.closing.CompareAndSwap(nil, &closeInfo{code: code})
	if s.markClosed() {
		s.hub.log.Debug("session closed", "session", s.id, "user", s.user, "code", code)
	}
}

// markClosed flags s closed and queues its release; it reports whether this
// call did it.
func (s *Session) markClosed() bool {
	if s.closed.Swap(true) {
		return false
	}
	s.hub.reap(s)
	return true
}

// cleanup leaves every room and forgets s. Idempotent. It waits for a
// Receive in progress to finish.
func (s *Session) cleanup() {
	s.mu.Lock()
	if s.cleaned {
		s.mu.Unlock()
		return
	}
	s.cleaned = true
	rooms := s.rooms
	s.rooms = nil
	announced := s.announced
	s.mu.Unlock()
	h := s.hub
	for _, r := range rooms {
		h.removeMember(r, s)
		h.pres.Leave(r.name, s.id)
		if announced {
			s.eventLeave(r.name)
		}
	}
	h.unregister(s)
	if !announced {
		return // its welcome never went out: back-ends never heard of it
	}
	code, reason := frame.CloseAbnormal, ""
	if ci := s.closing.Load(); ci != nil {
		code, reason = ci.code, ci.reason
	}
	if reason == "" {
		reason = closeReasons[code]
	}
	s.eventClose(code, reason)
}

// closeInfo is how a session was closed.
type closeInfo struct {
	code   uint16
	reason string
}

// closeWith closes the connection with code and reason, recording them for
// the close event, and releases the session.
func (s *Session) closeWith(code uint16, reason string) {
	s.closing.CompareAndSwap(nil, &closeInfo{code: code, reason: reason})
	s.conn.Close(code, reason)
	s.markClosed()
}

// send queues f on the connection (or holds it until the welcome is out).
// A failure means the connection is closing: release the session even if
// the loop's Closed never comes.
func (s *Session) send(f *frame.Prepared) {
	if s.held(f) {
		return
	}
	if err := s.conn.Send(f); err != nil {
		s.markClosed()
	}
}

// reply sends a per-session answer (ack, error, pong, reply, list).
func (s *Session) reply(build func(b []byte) []byte) {
	s.hub.outReply.Inc()
	s.send(prepare(build))
}

func (s *Session) ack(id reqID) {
	if id.set {
		s.reply(func(b []byte) []byte { return appendAck(b, id) })
	}
}

// fail sends an error; the message is for people and says what to change.
// Back-ends hear of it as an error event.
func (s *Session) fail(id reqID, code, msg string) {
	s.hub.countError(code)
	s.reply(func(b []byte) []byte { return appendError(b, id, code, msg) })
	if !s.closed.Load() {
		s.eventError(code, msg)
	}
}

// takeToken is the token bucket: it refills by elapsed time and takes one
// token, reporting whether there was one. Refusals add a strike, accepted
// messages remove one.
func (s *Session) takeToken() bool {
	h := s.hub
	if h.noLimit {
		return true
	}
	now := h.clock()
	s.tokens += float64(now-s.last) * h.perNano
	s.last = now
	if s.tokens > h.burst {
		s.tokens = h.burst
	}
	if s.tokens >= 1 {
		s.tokens--
		if s.strikes > 0 {
			s.strikes--
		}
		return true
	}
	s.strikes++
	return false
}

// rateLimited answers a refused message; past CloseAfter strikes the
// connection is cut with 4008.
func (s *Session) rateLimited(id reqID) {
	h := s.hub
	if s.strikes > h.closeAfter {
		h.log.Warn("rate limit: connection cut", "session", s.id, "user", s.user, "code", frame.CloseRateLimited)
		s.closeWith(frame.CloseRateLimited, "rate limit exceeded")
		return
	}
	s.fail(id, CodeRateLimited, fmt.Sprintf("too many messages: at most %g per second with bursts of %d; slow down",
		h.o.RateLimit.PerSecond, h.o.RateLimit.Burst))
}

// recoverPanic turns a panic in message handling into a 1011 close of this
// connection only, with the stack logged.
func (s *Session) recoverPanic() {
	if v := recover(); v != nil {
		s.hub.log.Error("panic handling a client message", "session", s.id, "user", s.user,
			"err", fmt.Sprint(v), "stack", string(debug.Stack()))
		s.closeWith(frame.CloseInternal, "internal error")
	}
}

// roomIndex returns the index of room name in s.rooms, or -1.
func (s *Session) roomIndex(name string) int {
	for i, r := range s.rooms {
		if r.name == name {
			return i
		}
	}
	return -1
}

// mayUse reports whether s may join or publish to room: an auto-joined room
// or one its allow patterns match.
func (s *Session) mayUse(room string) bool {
	return s.allow != nil && s.allow.Allows(room) || slices.Contains(s.auto, room)
}
