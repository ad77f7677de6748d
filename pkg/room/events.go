package room

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Lifecycle events: the node that owns a session publishes what happens to
// it on rc.events.<kind>, so that back-ends can follow their sockets
// (per-request sockets, continuous routes) without living in the node.
//
//	connect {"type":"connect","session","user","meta","node","route","remote","at"}
//	join    {"type":"join","session","user","room","node","at"}
//	leave   {"type":"leave","session","user","room","node","at"}
//	close   {"type":"close","session","user","node","code","reason","at"}
//	error   {"type":"error","session","user","node","code","message","at"}
//
// "at" is unix milliseconds. Per session the order is connect, joins and
// leaves and errors as they happen, the leaves of the rooms it was in when
// it closed, close. Delivery is at most once: an event is lost when the
// node's queue is full or NATS is down.
//
// Cost when nobody listens (EventsAuto): an event is a struct copied into a
// bounded channel; one goroutine decides whether to publish it. It publishes
// kinds someone is known to listen to, with a reply subject: when the last
// listener goes, the NATS server answers the next event with a 503 "no
// responders" status, and the kind becomes unheard. An event of an unheard
// kind waits for a probe: an empty message on rc.events.<kind> with header
// Rc-Probe and a reply subject, followed by a PING. The server answers the
// probe with a 503 if nobody subscribes, and it does so before the PONG, so
// when the flush returns the answer is known: no timeout is involved. One
// probe serves every event queued before it was sent, and probes are at
// least probeSpacing apart, so with nobody listening a busy node sends at
// most 1/probeSpacing probes per kind, whatever its event rate, and an event
// waits at most probeSpacing plus one round trip. A listener that subscribed
// (and flushed) before an event happened always gets it: the probe is sent
// after the event. BenchmarkEvents measures this.

// EventsMode says when a node publishes lifecycle events.
type EventsMode uint8

const (
	// EventsAuto publishes each kind only while someone subscribes to it
	// (see above). The default.
	EventsAuto EventsMode = iota
	// EventsOn publishes every event, listened to or not.
	EventsOn
	// EventsOff publishes nothing; per-request sockets then never hear of
	// their connection (pkg/backend needs connect and close).
	EventsOff
)

// ParseEventsMode reads the --events flag: auto, on or off.
func ParseEventsMode(s string) (EventsMode, error) {
	switch s {
	case "auto", "":
		return EventsAuto, nil
	case "on", "true":
		return EventsOn, nil
	case "off", "false":
		return EventsOff, nil
	}
	return 0, fmt.Errorf("events mode %q is unknown: use auto, on or off", s)
}

func (m EventsMode) String() string {
	switch m {
	case EventsOn:
		return "on"
	case EventsOff:
		return "off"
	}
	return "auto"
}

// HeaderProbe marks an interest probe on rc.events.<kind>: its body is
// empty and listeners ignore it.
const HeaderProbe = "Rc-Probe"

// Event kinds, indexes into per-kind arrays.
const (
	kindConnect = iota
	kindJoin
	kindLeave
	kindClose
	kindError
	numKinds
)

var kindNames = [numKinds]string{"connect", "join", "leave", "close", "error"}

const (
	// eventQueue bounds the events waiting for the publisher: 4,096 × ~100
	// bytes = 400 KiB at most, enough for a reconnect storm of a few
	// thousand sessions each joining a room; past it events are dropped
	// (counted), never blocking a session.
	eventQueue = 4096
	// probeSpacing is the least time between two probes: with nobody
	// listening, at most 100 probes per second per kind, and an event
	// waits at most 10 ms (plus a round trip) before it is known unheard.
	probeSpacing = 10 * time.Millisecond
	// probeTimeout bounds the flush behind a probe; past it NATS is in
	// trouble and the events waiting for the probe are dropped.
	probeTimeout = 2 * time.Second
	// maxEventText caps a close reason or error message in an event.
	maxEventText = 512
)

// lifecycle is one queued event. Only immutable Session fields are read
// from s, so the publisher may read them on its own goroutine.
type lifecycle struct {
	s       *Session
	kind    uint8
	code    uint16 // close
	room    string // join, leave
	errCode string // error
	text    string // close reason, error message
	at      int64  // unix ms
}

// eventPub publishes lifecycle events on its own goroutine (run).
type eventPub struct {
	h    *Hub
	mode EventsMode
	q    chan lifecycle

	inbox    string
	subjects [numKinds]string
	replies  [numKinds]string // <inbox>.e.<kind>: 503 here = nobody heard an event
	probes   [numKinds]string // <inbox>.p.<kind>: 503 here = nobody heard a probe
	status   chan *nats.Msg   // answers on <inbox>.>
	sub      *nats.Subscription

	// Owned by run.
	listening [numKinds]bool
	lastProbe time.Time
	scratch   []byte

	published, suppressed, dropped [numKinds]prometheus.Counter
	probesSent                     prometheus.Counter
}

var probeHeader = nats.Header{HeaderProbe: {"1"}}

func newEventPub(h *Hub) *eventPub {
	p := &eventPub{h: h, mode: h.o.Events, q: make(chan lifecycle, eventQueue), status: make(chan *nats.Msg, 256),
		scratch: make([]byte, 0, 512)}
	inbox := h.nc.NewInbox()
	p.inbox = inbox
	for k, name := range kindNames {
		p.subjects[k] = h.o.Subjects.Event(name)
		p.replies[k] = inbox + ".e." + name
		p.probes[k] = inbox + ".p." + name
		m := h.o.Metrics.Events
		p.published[k] = m.WithLabelValues(name, "published")
		p.suppressed[k] = m.WithLabelValues(name, "suppressed")
		p.dropped[k] = m.WithLabelValues(name, "dropped")
	}
	p.probesSent = h.o.Metrics.EventProbes
	return p
}

// start subscribes to the probe answers and starts run; called by Hub.Start
// with h.mu held.
func (p *eventPub) start() error {
	if p.mode == EventsAuto {
		sub, err := p.h.nc.ChanSubscribe(p.inbox+".>", p.status)
		if err != nil {
			return fmt.Errorf("room: subscribe to event probes: %w", err)
		}
		p.sub = sub
	}
	if p.mode != EventsOff {
		p.h.wg.Add(1)
		go p.run()
	}
	return nil
}

func (p *eventPub) stop() {
	if p.sub != nil {
		_ = p.sub.Unsubscribe()
	}
}

// emit queues ev; it never blocks.
func (p *eventPub) emit(ev lifecycle) {
	if p.mode == EventsOff {
		return
	}
	ev.at = time.Now().UnixMilli()
	select {
	case p.q <- ev:
	default:
		p.dropped[ev.kind].Inc()
	}
}

func (p *eventPub) run() {
	defer p.h.wg.Done()
	batch := make([]lifecycle, 0, 64)
	for {
		select {
		case <-p.h.done:
			// Best effort for what the drain queued: the close events of
			// the last sessions.
			batch = p.take(batch[:0])
			p.handle(batch)
			return
		case m := <-p.status:
			p.noteStatus(m, nil)
		case ev := <-p.q:
			batch = p.take(append(batch[:0], ev))
			p.handle(batch)
			clear(batch) // drop the *Session references
		}
	}
}

// take appends what is queued, without waiting.
func (p *eventPub) take(batch []lifecycle) []lifecycle {
	for len(batch) < eventQueue {
		select {
		case ev := <-p.q:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

func (p *eventPub) handle(batch []lifecycle) {
	if len(batch) == 0 {
		return
	}
	if p.mode == EventsAuto && p.unheard(batch) {
		if wait := probeSpacing - time.Since(p.lastProbe); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.h.done:
				t.Stop()
			}
			batch = p.take(batch) // one probe serves these too
		}
		p.probe(batch)
	}
	up := p.h.natsUp()
	for i := range batch {
		ev := &batch[i]
		switch {
		case p.mode == EventsAuto && !p.listening[ev.kind]:
			p.suppressed[ev.kind].Inc()
		case !up:
			p.dropped[ev.kind].Inc()
		default:
			p.publish(ev)
		}
	}
}

// unheard reports whether batch holds a kind nobody is known to listen to.
func (p *eventPub) unheard(batch []lifecycle) bool {
	for i := range batch {
		if !p.listening[batch[i].kind] {
			return true
		}
	}
	return false
}

// probe asks the server, for every unheard kind in batch, whether anyone
// subscribes to it now (see the top of this file).
func (p *eventPub) probe(batch []lifecycle) {
	var asked [numKinds]bool
	for i := range batch {
		if k := batch[i].kind; !p.listening[k] {
			asked[k] = true
		}
	}
	p.lastProbe = time.Now()
	nc := p.h.nc
	if !p.h.natsUp() {
		return // unheard kinds stay unheard; their events are dropped
	}
	for k := range asked {
		if asked[k] {
			p.probesSent.Inc()
			if err := nc.PublishMsg(&nats.Msg{Subject: p.subjects[k], Reply: p.probes[k], Header: probeHeader}); err != nil {
				return
			}
		}
	}
	if err := nc.FlushTimeout(probeTimeout); err != nil {
		p.h.log.Debug("events: probe flush", "err", err)
		return
	}
	// Every answer the server sent before the PONG is in p.status now:
	// nats.go hands a channel subscription its messages on the reader
	// goroutine, in order, before it processes the PONG.
	var none [numKinds]bool
	for {
		select {
		case m := <-p.status:
			p.noteStatus(m, &none)
			continue
		default:
		}
		break
	}
	for k := range asked {
		if asked[k] {
			p.listening[k] = !none[k]
		}
	}
}

// noteStatus reads a "no responders" answer: to an event, the kind is no
// longer heard; to a probe, it is recorded in none (nil: a late answer to a
// probe that timed out, ignored).
func (p *eventPub) noteStatus(m *nats.Msg, none *[numKinds]bool) {
	if m.Header.Get("Status") != "503" {
		return // a listener answered an event or a probe: ignore
	}
	for k := range kindNames {
		switch m.Subject {
		case p.replies[k]:
			p.listening[k] = false
		case p.probes[k]:
			if none != nil {
				none[k] = true
			}
		}
	}
}

func (p *eventPub) publish(ev *lifecycle) {
	b := appendLifecycle(p.scratch[:0], ev, p.h.o.Node)
	if cap(b) <= maxScratch {
		p.scratch = b[:0]
	}
	// Both copy b into the connection's buffer before they return, so
	// scratch may be reused.
	var err error
	if p.mode == EventsAuto {
		err = p.h.nc.PublishRequest(p.subjects[ev.kind], p.replies[ev.kind], b)
	} else {
		err = p.h.nc.Publish(p.subjects[ev.kind], b)
	}
	if err != nil {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			p.h.log.Debug("events: publish", "kind", kindNames[ev.kind], "err", err)
		}
		p.dropped[ev.kind].Inc()
		return
	}
	p.published[ev.kind].Inc()
}

// appendLifecycle encodes one event (see the top of this file).
func appendLifecycle(b []byte, ev *lifecycle, node string) []byte {
	s := ev.s
	b = append(b, `{"type":"`...)
	b = append(b, kindNames[ev.kind]...)
	b = append(b, `","session":`...)
	b = appendString(b, s.id)
	b = append(b, `,"user":`...)
	b = appendString(b, s.user)
	switch ev.kind {
	case kindConnect:
		b = append(b, `,"meta":`...)
		b = appendMeta(b, s.meta)
	case kindJoin, kindLeave:
		b = append(b, `,"room":`...)
		b = appendString(b, ev.room)
	}
	b = append(b, `,"node":`...)
	b = appendString(b, node)
	switch ev.kind {
	case kindConnect:
		b = append(b, `,"route":`...)
		b = appendString(b, s.route)
		b = append(b, `,"remote":`...)
		b = appendString(b, s.remote)
	case kindClose:
		b = append(b, `,"code":`...)
		b = strconv.AppendUint(b, uint64(ev.code), 10)
		b = append(b, `,"reason":`...)
		b = appendString(b, cut(ev.text, maxEventText))
	case kindError:
		b = append(b, `,"code":`...)
		b = appendString(b, ev.errCode)
		b = append(b, `,"message":`...)
		b = appendString(b, cut(ev.text, maxEventText))
	}
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, ev.at, 10)
	return append(b, '}')
}

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Session-side helpers: each queues one event for s.

func (s *Session) eventConnect() { s.hub.events.emit(lifecycle{s: s, kind: kindConnect}) }

func (s *Session) eventJoin(room string) {
	s.hub.events.emit(lifecycle{s: s, kind: kindJoin, room: room})
}

func (s *Session) eventLeave(room string) {
	s.hub.events.emit(lifecycle{s: s, kind: kindLeave, room: room})
}

func (s *Session) eventClose(code uint16, reason string) {
	s.hub.events.emit(lifecycle{s: s, kind: kindClose, code: code, text: reason})
}

func (s *Session) eventError(code, msg string) {
	s.hub.events.emit(lifecycle{s: s, kind: kindError, errCode: code, text: msg})
}

// closeReasons are the reasons reported in close events when the node did
// not choose one (the loop closed the connection, or the client did).
var closeReasons = map[uint16]string{
	1000: "normal closure",
	1001: "going away",
	1002: "protocol error",
	1003: "unsupported data",
	1005: "no status",
	1006: "connection lost",
	1007: "invalid UTF-8",
	1008: "policy violation",
	1009: "message too large",
	1011: "internal error",
	1012: "service restart",
	4001: "key invalid",
	4003: "forbidden",
	4008: "rate limit exceeded",
	4009: "slow consumer: outgoing queue full",
}
