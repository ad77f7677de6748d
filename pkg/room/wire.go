package room

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/presence"
)

// Client message types (DESIGN.md "Wire protocol").
const (
	typeJoin     = "join"
	typeLeave    = "leave"
	typePublish  = "publish"
	typeSend     = "send"
	typeRPC      = "rpc"
	typePresence = "presence"
	typePing     = "ping"
)

// Error codes of `error` messages. CodeTooManyRooms is roomcast's addition to
// the DESIGN.md list.
const (
	CodeBadRequest   = "bad_request"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeRateLimited  = "rate_limited"
	CodeTooLarge     = "too_large"
	CodeUnavailable  = "unavailable"
	CodeTimeout      = "timeout"
	CodeTooManyRooms = "too_many_rooms"
)

var errorCodes = []string{CodeBadRequest, CodeForbidden, CodeNotFound, CodeRateLimited,
	CodeTooLarge, CodeUnavailable, CodeTimeout, CodeTooManyRooms}

// request is one decoded client message. Strings and Data are copies: the
// frame buffer they came from is reused as soon as Receive returns.
type request struct {
	Type   string          `json:"type"`
	ID     reqID           `json:"id"`
	Room   string          `json:"room"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Meta   json.RawMessage `json:"meta"`
	Echo   optBool         `json:"echo"`
	Method string          `json:"method"`
	// Since, Limit, Before and After are history's (history.go).
	Since  *history.Position `json:"since"`
	Limit  int               `json:"limit"`
	Before uint64            `json:"before"`
	After  uint64            `json:"after"`
}

// reqID is the optional "id" of a client message, echoed by the reply.
type reqID struct {
	n   uint64
	set bool
}

var errBadID = errors.New(`field "id" must be an unsigned integer`)

// UnmarshalJSON accepts an unsigned integer or null.
func (id *reqID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return errBadID
	}
	id.n, id.set = n, true
	return nil
}

// optBool is a JSON boolean that remembers whether it was present, without
// the allocation of a *bool.
type optBool struct{ v, set bool }

var errBadEcho = errors.New(`field "echo" must be true or false`)

// UnmarshalJSON accepts true, false or null.
func (b *optBool) UnmarshalJSON(p []byte) error {
	switch string(p) {
	case "true":
		b.v, b.set = true, true
	case "false":
		b.v, b.set = false, true
	case "null":
	default:
		return errBadEcho
	}
	return nil
}

// decodeRequest decodes one client message into req. The error says, for a
// person, what was wrong with the message.
func decodeRequest(text []byte, req *request) error {
	err := json.Unmarshal(text, req)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %s; send one JSON object per text frame", syn.Offset, syn.Error())
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("a message must be a JSON object, not %s", article(typ.Value))
	case errors.As(err, &typ):
		return fmt.Errorf("field %q must be %s, not %s", typ.Field, kindName(typ.Type), article(typ.Value))
	case errors.Is(err, errBadID), errors.Is(err, errBadEcho):
		return err
	}
	return fmt.Errorf("invalid message: %v", err)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint64, reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

func article(v string) string {
	switch v {
	case "object", "array":
		return "an " + v
	case "number", "string", "bool":
		return "a " + v
	}
	return v
}

// checkEvent validates an event name: it goes into a NATS header, so no
// control characters (CR/LF would break the header block) and a bounded
// length.
func checkEvent(e string) error {
	if len(e) == 0 || len(e) > maxEvent {
		return fmt.Errorf("event %s is invalid: use 1–%d bytes without control characters", quote(e), maxEvent)
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("event %s is invalid: use 1–%d bytes without control characters", quote(e), maxEvent)
		}
	}
	return nil
}

// maxEvent is the longest event name, in bytes.
const maxEvent = 128

// quote shows a client-supplied string in an error, cut short.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// compactJSON returns raw without insignificant whitespace, or nil for null
// or invalid JSON. Server messages may be batched several to a frame,
// separated by '\n', so nothing embedded raw may contain a newline.
func compactJSON(raw []byte) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil
	}
	if !utf8.Valid(b.Bytes()) {
		return validUTF8(b.Bytes())
	}
	return b.Bytes()
}

// scratch buffers for building server messages; NewPrepared copies what it
// is given, so a buffer goes back to the pool as soon as the frame exists.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxScratch: bigger buffers are not pooled, so one huge message does not
// pin its size for ever.
const maxScratch = 64 << 10

func prepare(build func(b []byte) []byte) *frame.Prepared {
	bp := scratchPool.Get().(*[]byte)
	b := build((*bp)[:0])
	f := frame.NewPrepared(frame.OpText, b)
	if cap(b) <= maxScratch {
		*bp = b[:0]
		scratchPool.Put(bp)
	}
	return f
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// control characters are escaped, so the result never holds a raw newline.
func appendString[T ~string | ~[]byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := decodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s)
	return utf8.DecodeRune(buf[:n])
}

// appendData appends a message body as a JSON value: a body that is valid
// JSON is embedded as is (compacted if it spans lines), an empty body is
// null, and anything else becomes a JSON string (invalid UTF-8 replaced).
// So `{"a":1}` published on NATS arrives as an object, `hello` as "hello",
// and `"hello"` (with quotes) also as "hello".
//
// encoding/json accepts invalid UTF-8 inside strings, but a browser fails a
// text frame that carries any (1007): such bytes are replaced by U+FFFD one
// by one, as a JSON decoder would read them, so the value is unchanged.
func appendData(b, data []byte) []byte {
	if len(bytes.TrimSpace(data)) == 0 {
		return append(b, "null"...)
	}
	if !json.Valid(data) {
		return appendString(b, data)
	}
	if !utf8.Valid(data) {
		data = validUTF8(data) // rare: only bodies from misbehaving publishers
	}
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		return append(b, data...)
	}
	buf := bytes.NewBuffer(b)
	_ = json.Compact(buf, data) // data is valid
	return buf.Bytes()
}

// validUTF8 returns p with each byte that is not part of valid UTF-8
// replaced by U+FFFD. In valid JSON such bytes can only be inside strings,
// where U+FFFD is as valid, so the result is still valid JSON.
func validUTF8(p []byte) []byte {
	out := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	return out
}

func appendID(b []byte, id reqID) []byte {
	if !id.set {
		return b
	}
	b = append(b, `,"id":`...)
	return strconv.AppendUint(b, id.n, 10)
}

func appendMeta(b []byte, meta json.RawMessage) []byte {
	if len(meta) == 0 {
		return append(b, "null"...)
	}
	return append(b, meta...)
}

// appendEvent builds an `event` message. room is empty for direct messages,
// from is empty for server-side publishes.
//
// Hot path: once per room message per node (BenchmarkFanout).
func appendEvent(b []byte, room, event, from string, data []byte) []byte {
	b = append(b, `{"type":"event"`...)
	if room != "" {
		b = append(b, `,"room":`...)
		b = appendString(b, room)
	}
	b = append(b, `,"event":`...)
	b = appendString(b, event)
	b = append(b, `,"data":`...)
	b = appendData(b, data)
	if from != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, from)
	}
	return append(b, '}')
}

func appendAck(b []byte, id reqID) []byte {
	b = append(b, `{"type":"ack"`...)
	return append(appendID(b, id), '}')
}

func appendPong(b []byte, id reqID) []byte {
	b = append(b, `{"type":"pong"`...)
	return append(appendID(b, id), '}')
}

func appendError(b []byte, id reqID, code, msg string) []byte {
	b = append(b, `{"type":"error"`...)
	b = appendID(b, id)
	b = append(b, `,"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	return append(b, '}')
}

func appendReply(b []byte, id reqID, data []byte) []byte {
	b = append(b, `{"type":"reply"`...)
	b = appendID(b, id)
	b = append(b, `,"data":`...)
	b = appendData(b, data)
	return append(b, '}')
}

func appendWelcome(b []byte, s *Session, node string, pingSeconds int64) []byte {
	b = append(b, `{"type":"welcome","session":`...)
	b = appendString(b, s.id)
	b = append(b, `,"node":`...)
	b = appendString(b, node)
	b = append(b, `,"user":`...)
	b = appendString(b, s.user)
	b = append(b, `,"meta":`...)
	b = appendMeta(b, s.meta)
	b = append(b, `,"rooms":[`...)
	for i, r := range s.auto {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, r)
	}
	b = append(b, `],"ping_interval":`...)
	b = strconv.AppendInt(b, pingSeconds, 10)
	return append(b, '}')
}

func appendMember(b []byte, m *presence.Member) []byte {
	b = append(b, `{"session":`...)
	b = appendString(b, m.Session)
	b = append(b, `,"user":`...)
	b = appendString(b, m.User)
	b = append(b, `,"meta":`...)
	b = appendMeta(b, m.Meta)
	b = append(b, `,"connected_at":`...)
	b = strconv.AppendInt(b, m.ConnectedAt, 10)
	return append(b, '}')
}

// appendList builds a `session:list`. In count-only rooms sessions is empty
// and count_only is true.
func appendList(b []byte, id reqID, room string, members []presence.Member, count int, countOnly bool) []byte {
	b = append(b, `{"type":"session:list"`...)
	b = appendID(b, id)
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	b = append(b, `,"sessions":[`...)
	for i := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMember(b, &members[i])
	}
	b = append(b, `],"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	if countOnly {
		b = append(b, `,"count_only":true`...)
	}
	return append(b, '}')
}

// appendPresence builds session:connected, session:disconnected or
// session:updated.
func appendPresence(b []byte, typ, room string, m *presence.Member, count int) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	b = append(b, `,"session":`...)
	b = appendString(b, m.Session)
	b = append(b, `,"user":`...)
	b = appendString(b, m.User)
	b = append(b, `,"meta":`...)
	b = appendMeta(b, m.Meta)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	return append(b, '}')
}

func appendCount(b []byte, room string, count int) []byte {
	b = append(b, `{"type":"session:count","room":`...)
	b = appendString(b, room)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	return append(b, '}')
}
