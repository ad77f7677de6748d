package bus

import "strings"

// DefaultPrefix is the first token of every roomcast subject.
const DefaultPrefix = "rc"

// Subjects builds the NATS subjects of DESIGN.md under one prefix. The zero
// value uses DefaultPrefix. Subjects are a public API: app services publish to
// and subscribe on them directly, so their shape never changes silently.
type Subjects struct {
	// Prefix is the first token; empty means DefaultPrefix.
	Prefix string
}

func (s Subjects) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

func (s Subjects) join(kind, name string) string {
	var b strings.Builder
	p := s.p()
	b.Grow(len(p) + len(kind) + len(name) + 2)
	b.WriteString(p)
	b.WriteByte('.')
	b.WriteString(kind)
	if name != "" {
		b.WriteByte('.')
		b.WriteString(name)
	}
	return b.String()
}

// Room is rc.room.<room>: broadcasts to every session in the room.
func (s Subjects) Room(room string) string { return s.join("room", room) }

// RoomAll is rc.room.>: every room (used by history streams and observers).
func (s Subjects) RoomAll() string { return s.join("room", ">") }

// RoomFromSubject returns the room name of an rc.room.<room> subject.
func (s Subjects) RoomFromSubject(subject string) (string, bool) {
	return s.trim(subject, "room")
}

// Session is rc.session.<id>: a direct message to one session.
func (s Subjects) Session(id string) string { return s.join("session", id) }

// User is rc.user.<user>: a direct message to every session of a user.
func (s Subjects) User(user string) string { return s.join("user", user) }

// Send is rc.send.<session>: where a node publishes a client's `send` frames.
func (s Subjects) Send(session string) string { return s.join("send", session) }

// RPC is rc.rpc.<method>: request/reply for a client's `rpc` frames.
func (s Subjects) RPC(method string) string { return s.join("rpc", method) }

// Presence is rc.presence.<room>: presence deltas between nodes.
func (s Subjects) Presence(room string) string { return s.join("presence", room) }

// Event is rc.events.<kind>, kind one of connect, join, leave, close, error.
func (s Subjects) Event(kind string) string { return s.join("events", kind) }

// AuthConnect is rc.auth.connect: the `hook` auth request.
func (s Subjects) AuthConnect() string { return s.join("auth", "connect") }

// KeysMint is rc.keys.mint: the key-minting service.
func (s Subjects) KeysMint() string { return s.join("keys", "mint") }

// Control is rc.control.<action>: kick, close-room, drain.
func (s Subjects) Control(action string) string { return s.join("control", action) }

// Tail returns what follows "<prefix>.<kind>." in subject.
func (s Subjects) Tail(subject, kind string) (string, bool) { return s.trim(subject, kind) }

func (s Subjects) trim(subject, kind string) (string, bool) {
	p := s.p()
	if len(subject) < len(p)+len(kind)+3 || subject[:len(p)] != p || subject[len(p)] != '.' {
		return "", false
	}
	rest := subject[len(p)+1:]
	if len(rest) <= len(kind) || rest[:len(kind)] != kind || rest[len(kind)] != '.' {
		return "", false
	}
	return rest[len(kind)+1:], true
}
