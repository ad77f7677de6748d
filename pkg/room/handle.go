package room

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/names"
	"github.com/roomcast/roomcast/pkg/presence"
)

// checkRoom validates a room name; the error text is the names package's,
// written for people.
func checkRoom(room string) error { return names.CheckRoom(room) }

const unknownType = "use join, leave, publish, send, rpc, presence, history or ping"

// dispatch runs one valid client message. Called with s.mu held.
func (s *Session) dispatch(req *request) {
	switch req.Type {
	case typeJoin:
		if !s.needRoom(req) {
			return
		}
		if s.joinHistory(req) {
			return
		}
		s.join(req.ID, req.Room, req.Meta)
	case typeLeave:
		if !s.needRoom(req) {
			return
		}
		s.leave(req.ID, req.Room)
	case typePublish:
		if !s.needRoom(req) {
			return
		}
		s.publish(req)
	case typeSend:
		s.sendToBackend(req)
	case typeRPC:
		s.rpc(req)
	case typePresence:
		if !s.needRoom(req) {
			return
		}
		s.presence(req.ID, req.Room)
	case typeHistory:
		if !s.needRoom(req) {
			return
		}
		s.history(req)
	case typePing:
		s.reply(func(b []byte) []byte { return appendPong(b, req.ID) })
	case "":
		s.fail(req.ID, CodeBadRequest, `missing field "type": `+unknownType)
	default:
		s.fail(req.ID, CodeBadRequest, fmt.Sprintf("unknown type %s: %s", quote(req.Type), unknownType))
	}
}

// needRoom checks the room field of req, answering bad_request if it is
// missing or invalid.
func (s *Session) needRoom(req *request) bool {
	if req.Room == "" {
		s.fail(req.ID, CodeBadRequest, fmt.Sprintf(`%s needs a "room" field`, req.Type))
		return false
	}
	if err := checkRoom(req.Room); err != nil {
		s.fail(req.ID, CodeBadRequest, err.Error())
		return false
	}
	return true
}

// join puts s in room (or updates its meta there) and answers ack (if id is
// set) then session:list. name is valid.
func (s *Session) join(id reqID, name string, rawMeta json.RawMessage) {
	r, fresh, code, msg := s.enter(name, rawMeta, false)
	if r == nil {
		s.fail(id, code, msg)
		return
	}
	if fresh {
		s.eventJoin(name)
	}
	s.hub.sendList(s, r, id, reqID{})
}

// enter is join without the answer: it puts s in room name (or updates its
// meta there) and returns the room and whether s was not in it before, or
// nil and the error code and message for the client. trusted skips the
// allow check (a back-end's rc.control.join). Called with s.mu held.
func (s *Session) enter(name string, rawMeta json.RawMessage, trusted bool) (r *room, fresh bool, code, msg string) {
	h := s.hub
	if !trusted && !s.mayUse(name) {
		return nil, false, CodeForbidden, fmt.Sprintf("room %s is not allowed for this session", quote(name))
	}
	meta := s.meta
	if len(rawMeta) > 0 && string(rawMeta) != "null" {
		if len(rawMeta) > h.o.MaxMeta {
			return nil, false, CodeTooLarge, fmt.Sprintf("meta is %d bytes: at most %d", len(rawMeta), h.o.MaxMeta)
		}
		if bytes.TrimSpace(rawMeta)[0] != '{' {
			return nil, false, CodeBadRequest, `field "meta" must be a JSON object`
		}
		meta = compactJSON(rawMeta)
	}
	idx := s.roomIndex(name)
	if idx < 0 && len(s.rooms) >= h.o.MaxRoomsPerSession {
		return nil, false, CodeTooManyRooms, fmt.Sprintf("a session may be in at most %d rooms: leave one first", h.o.MaxRoomsPerSession)
	}
	if !h.natsUp() {
		return nil, false, CodeUnavailable, "the message bus is unavailable: retry shortly"
	}
	m := presence.Member{Session: s.id, User: s.user, Meta: meta, ConnectedAt: time.Now().UnixMilli()}
	if err := h.pres.Join(h.ctx, name, m); err != nil {
		h.log.Debug("presence join", "session", s.id, "room", name, "err", err)
		return nil, false, CodeUnavailable, "presence is unavailable: retry shortly"
	}
	if idx >= 0 {
		return s.rooms[idx], false, "", ""
	}
	r, err := h.addMember(name, s)
	if err != nil {
		h.pres.Leave(name, s.id)
		h.log.Debug("room join", "session", s.id, "room", name, "err", err)
		return nil, false, CodeUnavailable, "the message bus is unavailable: retry shortly"
	}
	s.rooms = append(s.rooms, r)
	return r, true, "", ""
}

func (s *Session) leave(id reqID, name string) {
	if !s.exit(name) {
		s.fail(id, CodeNotFound, fmt.Sprintf("not in room %s", quote(name)))
		return
	}
	s.ack(id)
}

// exit takes s out of room name; false if it was not in it. Called with
// s.mu held.
func (s *Session) exit(name string) bool {
	idx := s.roomIndex(name)
	if idx < 0 {
		return false
	}
	r := s.rooms[idx]
	s.rooms = slices.Delete(s.rooms, idx, idx+1)
	s.hub.removeMember(r, s)
	s.hub.pres.Leave(name, s.id)
	s.eventLeave(name)
	return true
}

func (s *Session) presence(id reqID, name string) {
	idx := s.roomIndex(name)
	if idx < 0 {
		s.fail(id, CodeNotFound, fmt.Sprintf("not in room %s: join it first", quote(name)))
		return
	}
	s.hub.sendList(s, s.rooms[idx], reqID{}, id)
}

// eventName returns the event of req, defaulting to "message".
func (s *Session) eventName(req *request) (string, bool) {
	if req.Event == "" {
		return "message", true
	}
	if err := checkEvent(req.Event); err != nil {
		s.fail(req.ID, CodeBadRequest, err.Error())
		return "", false
	}
	return req.Event, true
}

// publish sends a client publish to rc.room.<room>; every node's fan-out
// (this one's included) delivers it. The ack means NATS took the message.
func (s *Session) publish(req *request) {
	h := s.hub
	if !s.mayUse(req.Room) {
		s.fail(req.ID, CodeForbidden, fmt.Sprintf("publishing to room %s is not allowed for this session", quote(req.Room)))
		return
	}
	event, ok := s.eventName(req)
	if !ok {
		return
	}
	if !h.natsUp() {
		s.fail(req.ID, CodeUnavailable, "the message bus is unavailable: retry shortly")
		return
	}
	// Headers are built here from the session's own fields: nothing the
	// client sent goes into them except the checked event name.
	msg := &nats.Msg{Subject: h.o.Subjects.Room(req.Room), Data: req.Data, Header: nats.Header{
		HeaderEvent: {event},
		HeaderFrom:  {s.id},
	}}
	if req.Echo.set && !req.Echo.v {
		msg.Header[HeaderNoEcho] = []string{s.id}
	}
	if err := h.nc.PublishMsg(msg); err != nil {
		h.log.Debug("publish", "session", s.id, "room", req.Room, "err", err)
		s.fail(req.ID, CodeUnavailable, "the message bus is unavailable: retry shortly")
		return
	}
	s.ack(req.ID)
}

// sendToBackend publishes a client `send` to rc.send.<session>.
func (s *Session) sendToBackend(req *request) {
	h := s.hub
	event, ok := s.eventName(req)
	if !ok {
		return
	}
	if !h.natsUp() {
		s.fail(req.ID, CodeUnavailable, "the message bus is unavailable: retry shortly")
		return
	}
	msg := &nats.Msg{Subject: h.o.Subjects.Send(s.id), Data: req.Data, Header: nats.Header{HeaderEvent: {event}}}
	if s.user != "" {
		msg.Header[HeaderUser] = []string{s.user}
	}
	if err := h.nc.PublishMsg(msg); err != nil {
		h.log.Debug("send", "session", s.id, "err", err)
		s.fail(req.ID, CodeUnavailable, "the message bus is unavailable: retry shortly")
		return
	}
	s.ack(req.ID)
}

// HeaderError, on an rpc answer, turns it into an `error` for the client:
// its value is the code (lowercase letters and _, e.g. forbidden), the body
// the message. pkg/backend's Serve sets it for handler errors.
const HeaderError = "Rc-Error"

// answer passes a back-end's rpc answer to the client: as `reply`, or as
// `error` when the back-end said so (Rc-Error, or a NATS micro service
// error) or the answer is too large. Answers that are not what a client can
// use are logged (rate-limited), never fatal.
func (s *Session) answer(id reqID, method string, resp *nats.Msg) {
	h := s.hub
	if code := resp.Header.Get(HeaderError); code != "" {
		if !validErrorCode(code) {
			h.rpcWarn[0].warn(h.log, "rpc answer has an invalid Rc-Error code; sent as unavailable", "method", method)
			code = CodeUnavailable
		}
		msg := string(resp.Data)
		if msg == "" {
			msg = "rpc " + quote(method) + " failed"
		}
		s.fail(id, code, cut(msg, maxEventText))
		return
	}
	if code := resp.Header.Get("Nats-Service-Error-Code"); code != "" {
		msg := resp.Header.Get("Nats-Service-Error")
		if msg == "" {
			msg = "error " + code
		}
		s.fail(id, CodeUnavailable, cut("rpc "+quote(method)+" failed: "+msg, maxEventText))
		return
	}
	if len(resp.Data) > h.o.MaxReply {
		h.rpcWarn[1].warn(h.log, "rpc answer too large for a client; sent as too_large", "method", method, "bytes", len(resp.Data), "max", h.o.MaxReply)
		s.fail(id, CodeTooLarge, fmt.Sprintf("the answer to rpc %s is %d bytes: at most %d", quote(method), len(resp.Data), h.o.MaxReply))
		return
	}
	if !utf8.Valid(resp.Data) {
		// Passed on as a string with U+FFFD for the bad bytes (appendData).
		h.rpcWarn[2].warn(h.log, "rpc answer is not UTF-8 text; passed on as a string", "method", method, "bytes", len(resp.Data))
	}
	s.reply(func(b []byte) []byte { return appendReply(b, id, resp.Data) })
}

// validErrorCode accepts 1–32 of [a-z_]: what the wire's error codes look
// like.
func validErrorCode(c string) bool {
	if len(c) == 0 || len(c) > 32 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if (c[i] < 'a' || c[i] > 'z') && c[i] != '_' {
			return false
		}
	}
	return true
}

// rpc sends a request to rc.rpc.<method> without blocking the caller: the
// request waits on its own goroutine, at most MaxRPCInFlight per node, and
// the answer comes back as reply (or error) with the same id.
func (s *Session) rpc(req *request) {
	h := s.hub
	if req.Method == "" {
		s.fail(req.ID, CodeBadRequest, `rpc needs a "method" field`)
		return
	}
	if !names.ValidRoom(req.Method) {
		s.fail(req.ID, CodeBadRequest, fmt.Sprintf("method %s is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens", quote(req.Method)))
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
	msg := &nats.Msg{Subject: h.o.Subjects.RPC(req.Method), Data: req.Data, Header: nats.Header{HeaderSession: {s.id}}}
	if s.user != "" {
		msg.Header[HeaderUser] = []string{s.user}
	}
	if len(s.meta) > 0 {
		msg.Header[HeaderMeta] = []string{string(s.meta)} // compact: no CR/LF
	}
	id, method := req.ID, req.Method
	go func() {
		defer func() { <-h.rpcSlots }()
		ctx, cancel := context.WithTimeout(h.ctx, h.o.RPCTimeout)
		defer cancel()
		resp, err := h.nc.RequestMsgWithContext(ctx, msg)
		switch {
		case err == nil:
			s.answer(id, method, resp)
		case errors.Is(err, nats.ErrNoResponders):
			s.fail(id, CodeNotFound, fmt.Sprintf("no service answers rpc %s", quote(method)))
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			s.fail(id, CodeTimeout, fmt.Sprintf("rpc %s got no answer within %s", quote(method), h.o.RPCTimeout))
		default:
			h.log.Debug("rpc", "session", s.id, "err", err)
			s.fail(id, CodeUnavailable, "the message bus is unavailable: retry shortly")
		}
	}()
}
