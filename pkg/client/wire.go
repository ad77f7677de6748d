package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Server message types, as in DESIGN.md's wire protocol.
const (
	TypeWelcome             = "welcome"
	TypeEvent               = "event"
	TypeSessionList         = "session:list"
	TypeSessionConnected    = "session:connected"
	TypeSessionDisconnected = "session:disconnected"
	TypeSessionUpdated      = "session:updated"
	TypeAck                 = "ack"
	TypeReply               = "reply"
	TypeError               = "error"
	TypePong                = "pong"
	TypeHistory             = "history"
)

// Error codes the node sends in `error` messages.
const (
	CodeBadRequest  = "bad_request"
	CodeForbidden   = "forbidden"
	CodeNotFound    = "not_found"
	CodeRateLimited = "rate_limited"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
	CodeTimeout     = "timeout"
)

// Close codes from DESIGN.md. Codes 1001 (draining) and 1011 (internal) are
// worth reconnecting for, to another node if possible; 4001, 4003 and 1008
// will fail the same way again; 4008 and 4009 may be retried after a pause.
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001 // node draining: reconnect elsewhere
	CloseNoStatus     = 1005 // a close frame without a code
	CloseAbnormal     = 1006 // the socket ended without a close frame
	ClosePolicy       = 1008
	CloseTooLarge     = 1009
	CloseInternal     = 1011
	CloseKeyInvalid   = 4001 // key invalid, expired or already used
	CloseForbidden    = 4003
	CloseRateLimited  = 4008
	CloseSlowConsumer = 4009 // the outgoing queue on the node was full
)

// ErrClosed matches (with errors.Is) every error returned because the
// connection is gone; errors.As with *CloseError tells the close code.
var ErrClosed = errors.New("client: connection closed")

// Error is an `error` message from the node answering one of our requests,
// e.g. Code "bad_request" for a room name with a space.
type Error struct {
	Code    string // one of the Code* constants
	Message string // human-readable, from the node
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "roomcast: " + e.Code
	}
	return "roomcast: " + e.Code + ": " + e.Message
}

// CloseError says why the connection ended. Code is the close code the
// node sent (or echoed, after Close), CloseNoStatus when its close frame
// had none, and CloseAbnormal when the socket ended without a close frame;
// then Err holds the I/O error.
type CloseError struct {
	Code   int
	Reason string
	Err    error // underlying I/O or protocol error, if any
}

func (e *CloseError) Error() string {
	s := fmt.Sprintf("client: connection closed: code %d", e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrClosed) true for every CloseError.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// Unwrap returns the underlying I/O error, if any.
func (e *CloseError) Unwrap() error { return e.Err }

// HandshakeError is returned by Dial when the node refused the upgrade, for
// example HTTP 401 for a key that is unknown, expired or already used. Body
// holds the response body (JSON for roomcast's own refusals), at most 64 KiB.
type HandshakeError struct {
	Status int
	Header map[string][]string // response headers, canonical keys
	Body   []byte
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("client: upgrade refused: HTTP %d: %s", e.Status, truncate(e.Body, 200))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Member is one entry of a room's presence list.
type Member struct {
	Session     string          `json:"session"`
	User        string          `json:"user"`
	Meta        json.RawMessage `json:"meta,omitempty"`
	ConnectedAt int64           `json:"connected_at"` // unix milliseconds
}

// Welcome is the first message of every connection: who we are.
type Welcome struct {
	Session string
	Node    string
	User    string
	Meta    json.RawMessage
	// Rooms were joined automatically (from the key's claims or the route).
	Rooms []string
	// PingInterval is how often the node pings; it closes a connection that
	// sends nothing for two intervals. Zero if the node did not say.
	PingInterval time.Duration
	Raw          json.RawMessage
}

// Event is a message the node pushed without being asked: a room or direct
// message (Type "event"), a presence change (session:connected,
// session:disconnected, session:updated), a presence list (session:list, also
// delivered when it answers Join or Presence), or an `error` that answers no
// pending request. Fields that the type does not carry are zero.
type Event struct {
	Type string
	// Room is empty for direct messages (rc.session.<id>, rc.user.<user>).
	Room string
	// Event is the application event name, for Type "event".
	Event string
	// From is the sender's session id; empty when a server published.
	From string
	Data json.RawMessage
	// Seq is the room's history sequence, zero when the room keeps none;
	// Epoch names the history's incarnation. Together they are the
	// client's Position in the room.
	Seq   uint64
	Epoch string
	// Time is when the message was stored, for events of a HistoryPage;
	// zero for live events.
	Time time.Time

	// Session, User, Meta and Count describe the session a
	// session:connected/disconnected/updated is about; Count is the room's
	// member count after the change.
	Session string
	User    string
	Meta    json.RawMessage
	Count   int

	// Sessions is the member list of a session:list, self included.
	Sessions []Member

	// Code and Message are set for Type "error".
	Code    string
	Message string

	// Raw is the whole message as the node sent it, for fields this struct
	// does not know yet. It is a copy: keep it as long as you like.
	Raw json.RawMessage
}

// inMsg is the union of every server message; absent fields stay zero.
type inMsg struct {
	Type         string          `json:"type"`
	ID           uint64          `json:"id"`
	Room         string          `json:"room"`
	Event        string          `json:"event"`
	From         string          `json:"from"`
	Data         json.RawMessage `json:"data"`
	Seq          uint64          `json:"seq"`
	Epoch        string          `json:"epoch"`
	Recovered    *bool           `json:"recovered"`
	Events       []historyEvent  `json:"events"`
	Session      string          `json:"session"`
	Node         string          `json:"node"`
	User         string          `json:"user"`
	Meta         json.RawMessage `json:"meta"`
	Count        int             `json:"count"`
	Sessions     []Member        `json:"sessions"`
	Rooms        []string        `json:"rooms"`
	PingInterval float64         `json:"ping_interval"` // seconds
	Code         string          `json:"code"`
	Message      string          `json:"message"`
}

func (m *inMsg) event(raw []byte) Event {
	return Event{
		Type:     m.Type,
		Room:     m.Room,
		Event:    m.Event,
		From:     m.From,
		Data:     m.Data,
		Seq:      m.Seq,
		Epoch:    m.Epoch,
		Session:  m.Session,
		User:     m.User,
		Meta:     m.Meta,
		Count:    m.Count,
		Sessions: m.Sessions,
		Code:     m.Code,
		Message:  m.Message,
		Raw:      raw,
	}
}

func (m *inMsg) welcome(raw []byte) Welcome {
	return Welcome{
		Session:      m.Session,
		Node:         m.Node,
		User:         m.User,
		Meta:         m.Meta,
		Rooms:        m.Rooms,
		PingInterval: time.Duration(m.PingInterval * float64(time.Second)),
		Raw:          raw,
	}
}

// outMsg is every client message; empty fields are left out.
type outMsg struct {
	Type   string          `json:"type"`
	ID     uint64          `json:"id,omitempty"`
	Room   string          `json:"room,omitempty"`
	Event  string          `json:"event,omitempty"`
	Method string          `json:"method,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Meta   json.RawMessage `json:"meta,omitempty"`
	Echo   *bool           `json:"echo,omitempty"`
	Since  *Position       `json:"since,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	Before uint64          `json:"before,omitempty"`
	After  uint64          `json:"after,omitempty"`
}

// marshalData encodes v for a data or meta field; a json.RawMessage is sent
// as is, after validation. Nil means the field is left out.
func marshalData(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(x) {
			return nil, errors.New("client: data is not valid JSON")
		}
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: encode data: %w", err)
	}
	return b, nil
}
