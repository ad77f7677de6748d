package room

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/presence"
)

// Back-end control (rc.control.*, wired by pkg/node): every node receives
// every request and acts on its own sessions only. These methods trust
// their caller: NATS permissions decide who may publish rc.control.>.
//
// What a session sees:
//   - Kick: a close frame with the code and reason.
//   - LeaveSession: session:disconnected about itself in that room (the
//     message peers get), so clients drop the room from their state.
//   - CloseRoom: the same session:disconnected, then an `error` with code
//     forbidden, a message naming the room and the reason, and "room"; or,
//     with close, a close frame (default 4003).
//   - JoinSession: the session:list of the room, as for an auto-joined room.

// ControlError refuses a control request; Code is a wire error code
// (bad_request, not_found, unavailable, ...) and Message says what to do.
type ControlError struct {
	Code, Message string
}

func (e *ControlError) Error() string { return e.Message }

func badControl(format string, args ...any) *ControlError {
	return &ControlError{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// DefaultKickCode is the close code of a kick that names none (4003
// forbidden: the client must not retry as is).
const DefaultKickCode = frame.CloseForbidden

// checkClose validates a close code and reason from a control request.
func checkClose(code uint16, reason string) (uint16, string, error) {
	if code == 0 {
		code = DefaultKickCode
	}
	if !frame.ValidCloseCode(code) {
		return 0, "", badControl("close code %d cannot be sent: use 1000, 1001, 1008, 1011–1014 or 3000–4999", code)
	}
	return code, cut(reason, frame.MaxCloseReason), nil
}

// Kick closes this node's sessions whose id is session and/or whose user is
// user (at least one must be set; both must match when both are), with code
// (0 means DefaultKickCode) and reason, and returns how many it closed.
func (h *Hub) Kick(session, user string, code uint16, reason string) (int, error) {
	if session == "" && user == "" {
		return 0, badControl(`kick needs "session" or "user"`)
	}
	code, reason, err := checkClose(code, reason)
	if err != nil {
		return 0, err
	}
	var targets []*Session
	h.mu.RLock()
	switch {
	case session != "":
		if s := h.sessions[session]; s != nil && (user == "" || s.user == user) {
			targets = []*Session{s}
		}
	default:
		targets = h.users[user] // replaced on change, never modified
	}
	h.mu.RUnlock()
	for _, s := range targets {
		h.log.Info("session kicked", "session", s.id, "user", s.user, "code", code)
		s.closeWith(code, reason)
	}
	return len(targets), nil
}

// session returns the local session with id, or nil.
func (h *Hub) session(id string) *Session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sessions[id]
}

// JoinSession joins the local session id to room, whatever its allow
// patterns say, and grants it the room (it may publish there and join it
// again). meta, if set, is its presence meta there. found is false when the
// session is not on this node. The session gets the room's session:list.
func (h *Hub) JoinSession(id, room string, meta json.RawMessage) (found bool, err error) {
	if err := checkRoom(room); err != nil {
		return false, badControl("%s", err.Error())
	}
	s := h.session(id)
	if s == nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cleaned || s.closed.Load() {
		return false, nil
	}
	r, fresh, code, msg := s.enter(room, meta, true)
	if r == nil {
		return true, &ControlError{Code: code, Message: msg}
	}
	if !slices.Contains(s.auto, room) {
		s.auto = append(s.auto, room)
	}
	if fresh {
		s.eventJoin(room)
	}
	h.sendList(s, r, reqID{}, reqID{})
	return true, nil
}

// LeaveSession takes the local session id out of room and withdraws a
// grant of JoinSession. found is false when the session is not on this
// node; left is false when it was not in the room.
func (h *Hub) LeaveSession(id, room string) (found, left bool, err error) {
	if err := checkRoom(room); err != nil {
		return false, false, badControl("%s", err.Error())
	}
	s := h.session(id)
	if s == nil {
		return false, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cleaned || s.closed.Load() {
		return false, false, nil
	}
	if i := slices.Index(s.auto, room); i >= 0 {
		s.auto = slices.Delete(s.auto, i, i+1)
	}
	if !s.exit(room) {
		return true, false, nil
	}
	s.toldLeft(room)
	return true, true, nil
}

// CloseRoom removes every local member from room and returns how many
// there were. With close, their connections are closed with code (0 means
// DefaultKickCode) and reason instead.
func (h *Hub) CloseRoom(room string, code uint16, reason string, close bool) (int, error) {
	if err := checkRoom(room); err != nil {
		return 0, badControl("%s", err.Error())
	}
	code, reason, err := checkClose(code, reason)
	if err != nil {
		return 0, err
	}
	r := h.lookup(room)
	if r == nil {
		return 0, nil
	}
	msg := fmt.Sprintf("room %s was closed by the server", quote(room))
	if reason != "" {
		msg += ": " + reason
	}
	n := 0
	for _, s := range *r.members.Load() {
		if s.closed.Load() {
			continue // leaving anyway
		}
		if close {
			s.closeWith(code, reason)
			n++
			continue
		}
		s.mu.Lock()
		if !s.cleaned && s.exit(room) {
			s.toldLeft(room)
			h.countError(CodeForbidden)
			s.reply(func(b []byte) []byte { return appendRoomError(b, CodeForbidden, msg, room) })
			s.eventError(CodeForbidden, msg)
			n++
		}
		s.mu.Unlock()
	}
	if n > 0 {
		h.log.Info("room closed", "room", room, "sessions", n, "close", close)
	}
	return n, nil
}

// toldLeft tells s it is no longer in room, with the session:disconnected
// its peers got.
func (s *Session) toldLeft(room string) {
	_, count, _ := s.hub.pres.View(room)
	m := presence.Member{Session: s.id, User: s.user, Meta: s.meta, ConnectedAt: s.connectedAt}
	s.hub.outPresence.Inc()
	s.send(prepare(func(b []byte) []byte { return appendPresence(b, "session:disconnected", room, &m, count) }))
}

// appendRoomError builds an `error` about a room, without id.
func appendRoomError(b []byte, code, msg, room string) []byte {
	b = append(b, `{"type":"error","code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	return append(b, '}')
}
