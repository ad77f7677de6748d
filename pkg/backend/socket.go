package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// State is a Socket's state, as a browser WebSocket's readyState.
type State int32

const (
	// Connecting: the key is minted, the browser has not connected yet.
	Connecting State = iota
	// Open: the browser is connected to a node.
	Open
	// Closed: the connection ended, the key expired, or the Backend closed.
	Closed
)

func (st State) String() string {
	switch st {
	case Connecting:
		return "connecting"
	case Open:
		return "open"
	}
	return "closed"
}

// ConnectEvent is what the node tells of a connected socket
// (rc.events.connect).
type ConnectEvent struct {
	Session, User string
	// Meta is the session's meta (JSON), as the key carried it.
	Meta json.RawMessage
	// Node is the id of the node holding the connection; Route is the
	// continuous route ("" for a key URL); Remote the client's address.
	Node, Route, Remote string
	At                  time.Time
}

// Message is what the browser sent with `send` (rc.send.<session>).
type Message struct {
	// Event is the send's event name ("message" when it gave none).
	Event string
	// Data is the send's data as the browser wrote it (JSON).
	Data json.RawMessage
	// User is the session's user, as the node knows it.
	User string
}

// Decode unmarshals the message's data into v.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Data, v) }

// Socket is one browser connection owned by this back-end, as a browser
// WebSocket seen from the server: Send, Close, callbacks for open, message,
// close and error.
//
// Callbacks of one socket run one at a time, in the order the node's
// messages arrived, on a goroutine of the socket's (never the caller's), so
// they may call any Socket method and may block (later ones wait). The
// socket's methods are safe for concurrent use.
type Socket struct {
	b    *Backend
	id   string
	user string
	ctx  context.Context
	stop context.CancelFunc
	sub  *nats.Subscription

	mu       sync.Mutex
	state    State
	conn     ConnectEvent
	pending  []*nats.Msg // sent before open
	onOpen   []func(ConnectEvent)
	onMsg    []func(Message)
	onClose  []func(code int, reason string)
	onError  []func(code, message string)
	expiry   *time.Timer
	closeTO  *time.Timer
	closeReq *closeRequest

	// Serial execution of callbacks (do): a queue drained by at most one
	// goroutine at a time.
	qmu     sync.Mutex
	queue   []func()
	running bool
	idle    *sync.Cond
}

type closeRequest struct {
	code   int
	reason string
}

func newSocket(b *Backend, id, user string) *Socket {
	s := &Socket{b: b, id: id, user: user}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.idle = sync.NewCond(&s.qmu)
	return s
}

// ID is the session id (rc.session.<id>).
func (s *Socket) ID() string { return s.id }

// User is the user the key was minted for.
func (s *Socket) User() string { return s.user }

// State is the socket's state now.
func (s *Socket) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Conn is what the node said at connect; zero before Open.
func (s *Socket) Conn() ConnectEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Context ends when the socket closes: for goroutines that serve it.
func (s *Socket) Context() context.Context { return s.ctx }

// OnOpen registers f for when the browser connects: on the node's connect
// event, or on the browser's first message if that overtakes the event (the
// ConnectEvent is then empty; Conn fills in when the event arrives).
func (s *Socket) OnOpen(f func(ConnectEvent)) {
	s.mu.Lock()
	s.onOpen = append(s.onOpen, f)
	s.mu.Unlock()
}

// OnMessage registers f for each `send` of the browser.
func (s *Socket) OnMessage(f func(Message)) { s.mu.Lock(); s.onMsg = append(s.onMsg, f); s.mu.Unlock() }

// OnClose registers f for the end of the socket: the node's close code and
// reason, CloseKeyExpired if the key expired unredeemed, the code given to
// Close, or CloseServiceRestart when the Backend closed. Called once.
func (s *Socket) OnClose(f func(code int, reason string)) {
	s.mu.Lock()
	s.onClose = append(s.onClose, f)
	s.mu.Unlock()
}

// OnError registers f for errors the node sent the browser (rc.events.error,
// e.g. forbidden, rate_limited), and for mint_failed.
func (s *Socket) OnError(f func(code, message string)) {
	s.mu.Lock()
	s.onError = append(s.onError, f)
	s.mu.Unlock()
}

// Send sends data to the browser as event "message"; before the browser
// connects it is queued.
func (s *Socket) Send(data any) error { return s.Emit("message", data) }

// Emit sends data to the browser as event (rc.session.<id>); before the
// browser connects it is queued.
func (s *Socket) Emit(event string, data any) error {
	body, err := encode(data)
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: s.b.subject("session", s.id), Data: body, Header: nats.Header{HeaderEvent: {event}}}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case Connecting:
		s.pending = append(s.pending, m)
		return nil
	case Open:
		return s.b.nc.PublishMsg(m)
	}
	return ErrClosed
}

// Publish broadcasts to room as this session (the clients see it "from"
// this session id), whether or not the session is in the room.
func (s *Socket) Publish(room, event string, data any) error {
	return s.b.publish(s.b.subject("room", room), event, s.id, data)
}

// Join joins the session to room from the back-end (rc.control.join),
// whatever its allow patterns, and returns when the node holding it did.
// The socket must be open.
func (s *Socket) Join(ctx context.Context, room string, meta any) error {
	if st := s.State(); st != Open {
		return fmt.Errorf("backend: join: socket %s is %s", s.id, st)
	}
	return s.b.Join(ctx, s.id, room, meta)
}

// Leave takes the session out of room (rc.control.leave).
func (s *Socket) Leave(ctx context.Context, room string) error {
	if st := s.State(); st != Open {
		return fmt.Errorf("backend: leave: socket %s is %s", s.id, st)
	}
	return s.b.Leave(ctx, s.id, room)
}

// Close closes the browser's connection with code (1000, or 3000–4999 for
// your own) and reason, through rc.control.kick; OnClose runs when the node
// reports it, or after Options.CloseTimeout. Before the browser connects,
// the socket closes at once and the session is kicked if it connects later.
func (s *Socket) Close(code int, reason string) {
	s.do(func() {
		s.mu.Lock()
		switch {
		case s.state == Connecting:
			s.mu.Unlock()
			s.b.mu.Lock()
			// Kept as long as a key may live (the nodes cap TTLs at 24 h).
			s.b.early[s.id] = earlyClose{code: code, reason: reason, until: time.Now().Add(24 * time.Hour)}
			s.b.mu.Unlock()
			s.finish(code, reason, false)
			return
		case s.state != Open || s.closeReq != nil:
			s.mu.Unlock()
			return
		}
		s.closeReq = &closeRequest{code: code, reason: reason}
		s.closeTO = time.AfterFunc(s.b.o.CloseTimeout, func() { s.do(func() { s.finish(code, reason, false) }) })
		s.mu.Unlock()
		_ = s.b.publishJSON(s.b.subject("control", "kick"), map[string]any{"session": s.id, "code": code, "reason": reason})
	})
}

// setExpiry closes the socket with CloseKeyExpired if it is still
// connecting after d.
func (s *Socket) setExpiry(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Connecting {
		return
	}
	s.expiry = time.AfterFunc(d, func() {
		s.do(func() {
			if s.State() == Connecting {
				s.finish(CloseKeyExpired, "key expired before the browser connected", false)
			}
		})
	})
}

// opened handles the connect event (or the first message, which proves
// the connection when it overtook the event).
func (s *Socket) opened(ev *lifecycle) {
	s.mu.Lock()
	if ev != nil {
		s.conn = ConnectEvent{Session: ev.Session, User: ev.User, Meta: ev.Meta, Node: ev.Node, Route: ev.Route,
			Remote: ev.Remote, At: time.UnixMilli(ev.At)}
	}
	if s.state != Connecting {
		s.mu.Unlock()
		return
	}
	s.state = Open
	if s.expiry != nil {
		s.expiry.Stop()
	}
	// Published under mu, so that a Send racing with the open cannot
	// overtake what was queued before it.
	for _, m := range s.pending {
		if err := s.b.nc.PublishMsg(m); err != nil {
			s.b.log.Warn("backend: queued message not sent", "session", s.id, "err", err)
		}
	}
	s.pending = nil
	conn, fs := s.conn, slices.Clone(s.onOpen)
	s.mu.Unlock()
	for _, f := range fs {
		s.call("open", func() { f(conn) })
	}
}

func (s *Socket) received(m *nats.Msg) {
	if s.State() == Connecting {
		s.opened(nil)
	}
	s.mu.Lock()
	if s.state != Open {
		s.mu.Unlock()
		return
	}
	fs := slices.Clone(s.onMsg)
	s.mu.Unlock()
	event := m.Header.Get(HeaderEvent)
	if event == "" {
		event = "message"
	}
	msg := Message{Event: event, Data: json.RawMessage(m.Data), User: m.Header.Get(HeaderUser)}
	for _, f := range fs {
		s.call("message", func() { f(msg) })
	}
}

func (s *Socket) errored(code, message string) {
	s.mu.Lock()
	if s.state == Closed {
		s.mu.Unlock()
		return
	}
	fs := slices.Clone(s.onError)
	s.mu.Unlock()
	for _, f := range fs {
		s.call("error", func() { f(code, message) })
	}
}

// finish ends the socket once: releases its subscription, timers and
// context and runs OnClose. fromNode says the node reported the close.
func (s *Socket) finish(code int, reason string, fromNode bool) {
	s.mu.Lock()
	if s.state == Closed {
		s.mu.Unlock()
		return
	}
	s.state = Closed
	s.pending = nil
	for _, t := range []*time.Timer{s.expiry, s.closeTO} {
		if t != nil {
			t.Stop()
		}
	}
	if !fromNode && s.closeReq != nil {
		code, reason = s.closeReq.code, s.closeReq.reason
	}
	fs := slices.Clone(s.onClose)
	s.mu.Unlock()
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
	s.b.forget(s)
	s.stop()
	for _, f := range fs {
		s.call("close", func() { f(code, reason) })
	}
}

// run calls the Use handler on the caller's goroutine, turning a panic
// into an error.
func (s *Socket) run(handler func(*Socket)) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.b.log.Error("backend: socket handler panicked", "session", s.id, "err", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("backend: socket handler panicked: %v", v)
		}
	}()
	handler(s)
	return nil
}

// call runs one callback, logging a panic instead of dying with it.
func (s *Socket) call(what string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			s.b.log.Error("backend: socket callback panicked", "session", s.id, "callback", what,
				"err", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// do queues f to run after everything queued before it, never two at once.
func (s *Socket) do(f func()) {
	s.qmu.Lock()
	s.queue = append(s.queue, f)
	if s.running {
		s.qmu.Unlock()
		return
	}
	s.running = true
	s.qmu.Unlock()
	go s.drain()
}

func (s *Socket) drain() {
	for {
		s.qmu.Lock()
		if len(s.queue) == 0 {
			s.running = false
			s.idle.Broadcast()
			s.qmu.Unlock()
			return
		}
		f := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.qmu.Unlock()
		f()
	}
}

// wait blocks until the socket's queue is empty.
func (s *Socket) wait() {
	s.qmu.Lock()
	for s.running {
		s.idle.Wait()
	}
	s.qmu.Unlock()
}
