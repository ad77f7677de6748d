package room

import (
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/names"
)

func TestWelcomeAndAutoJoin(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	rec := &recorder{}
	s := h.Open(Identity{Session: "s-1", User: "ada", Meta: json.RawMessage("{\n \"name\": \"Ada\"\n}"),
		Rooms: []string{"lobby", "bad room"}}, rec)
	rec.session.Store(s)

	m := rec.next(t)
	want := `{"type":"welcome","session":"s-1","node":"n1","user":"ada","meta":{"name":"Ada"},"rooms":["lobby"],"ping_interval":25}`
	if got := rec.all(); len(got) == 0 || rec.raw[0] != want {
		t.Fatalf("welcome:\n got %v\nwant %s", m, want)
	}
	e := rec.expect(t, "error")
	if e["code"] != CodeBadRequest || !strings.Contains(e["message"].(string), `room "bad room" is invalid`) {
		t.Fatalf("bad auto-join room: %v", e)
	}
	l := rec.expect(t, "session:list")
	if l["room"] != "lobby" || !hasAll(sessionsOf(l), "s-1") || l["count"] != 1.0 {
		t.Fatalf("list: %v", l)
	}
	if _, ok := l["id"]; ok {
		t.Fatalf("auto-join list has an id: %v", l)
	}
	entry := l["sessions"].([]any)[0].(map[string]any)
	if entry["user"] != "ada" || entry["meta"].(map[string]any)["name"] != "Ada" || entry["connected_at"].(float64) <= 0 {
		t.Fatalf("list entry: %v", entry)
	}
	// An auto-joined room may be published to even though Allow is nil.
	send(s, `{"type":"publish","id":1,"room":"lobby","data":1}`)
	rec.expect(t, "ack")
	if h.Sessions() != 1 || h.Rooms() != 1 {
		t.Fatalf("sessions %d rooms %d", h.Sessions(), h.Rooms())
	}
}

func TestGeneratedSessionID(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	for _, id := range []string{"", "has.dot", "has space"} {
		s, _ := open(t, h, Identity{Session: id})
		if s.ID() == id || !names.ValidToken(s.ID()) {
			t.Errorf("Identity.Session %q gave id %q", id, s.ID())
		}
	}
}

func TestBadInput(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.MaxMeta = 64 })
	allow, err := names.Compile([]string{"lobby", "chat.*"})
	if err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, h, Identity{User: "u", Allow: allow})

	cases := []struct {
		name, in   string
		code, text string
		id         float64 // 0: no id expected
	}{
		{"invalid JSON", `{"type":`, CodeBadRequest, "invalid JSON", 0},
		{"not JSON", `hello`, CodeBadRequest, "invalid JSON", 0},
		{"empty", ``, CodeBadRequest, "invalid JSON", 0},
		{"array", `[1,2]`, CodeBadRequest, "must be a JSON object, not an array", 0},
		{"string", `"join"`, CodeBadRequest, "must be a JSON object, not a string", 0},
		{"null", `null`, CodeBadRequest, `missing field "type"`, 0},
		{"no type", `{"id":3}`, CodeBadRequest, `missing field "type"`, 3},
		{"unknown type", `{"type":"dance","id":4}`, CodeBadRequest, `unknown type "dance"`, 4},
		{"type not string", `{"type":7}`, CodeBadRequest, `field "type" must be a string, not a number`, 0},
		{"id negative", `{"type":"ping","id":-1}`, CodeBadRequest, `field "id" must be an unsigned integer`, 0},
		{"id string", `{"type":"ping","id":"x"}`, CodeBadRequest, `field "id" must be an unsigned integer`, 0},
		{"id float", `{"type":"ping","id":1.5}`, CodeBadRequest, `field "id" must be an unsigned integer`, 0},
		{"join no room", `{"type":"join","id":5}`, CodeBadRequest, `join needs a "room" field`, 5},
		{"join room number", `{"id":6,"type":"join","room":5}`, CodeBadRequest, `field "room" must be a string, not a number`, 6},
		{"join room space", `{"type":"join","id":7,"room":"a b"}`, CodeBadRequest, `room "a b" is invalid: use 1–128 chars`, 7},
		{"join room dots", `{"type":"join","id":8,"room":"a..b"}`, CodeBadRequest, `room "a..b" is invalid`, 8},
		{"join room wildcard", `{"type":"join","room":"chat.>"}`, CodeBadRequest, `room "chat.>" is invalid`, 0},
		{"join room too long", `{"type":"join","room":"` + strings.Repeat("a", 129) + `"}`, CodeBadRequest, "is invalid", 0},
		{"join forbidden", `{"type":"join","id":9,"room":"admin"}`, CodeForbidden, `room "admin" is not allowed`, 9},
		{"join meta not object", `{"type":"join","room":"lobby","meta":[1]}`, CodeBadRequest, `"meta" must be a JSON object`, 0},
		{"join meta too large", `{"type":"join","room":"lobby","meta":{"x":"` + strings.Repeat("x", 80) + `"}}`, CodeTooLarge, "at most 64", 0},
		{"leave no room", `{"type":"leave"}`, CodeBadRequest, `leave needs a "room" field`, 0},
		{"leave not joined", `{"type":"leave","id":10,"room":"lobby"}`, CodeNotFound, `not in room "lobby"`, 10},
		{"publish forbidden", `{"type":"publish","id":11,"room":"admin","data":1}`, CodeForbidden, `publishing to room "admin" is not allowed`, 11},
		{"publish echo string", `{"type":"publish","room":"lobby","echo":"no"}`, CodeBadRequest, `field "echo" must be true or false`, 0},
		{"publish event newline", `{"type":"publish","id":12,"room":"lobby","event":"a\nb"}`, CodeBadRequest, `event "a\nb" is invalid`, 12},
		{"publish event too long", `{"type":"publish","room":"lobby","event":"` + strings.Repeat("e", 129) + `"}`, CodeBadRequest, "is invalid", 0},
		{"publish event number", `{"type":"publish","room":"lobby","event":1}`, CodeBadRequest, `field "event" must be a string`, 0},
		{"presence not joined", `{"type":"presence","id":13,"room":"lobby"}`, CodeNotFound, "join it first", 13},
		{"rpc no method", `{"type":"rpc","id":14}`, CodeBadRequest, `rpc needs a "method" field`, 14},
		{"rpc bad method", `{"type":"rpc","method":"a b"}`, CodeBadRequest, `method "a b" is invalid`, 0},
		{"send event control", `{"type":"send","event":"\u0000"}`, CodeBadRequest, "is invalid", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			send(s, c.in)
			m := rec.expect(t, "error")
			if m["code"] != c.code || !strings.Contains(m["message"].(string), c.text) {
				t.Fatalf("%s: got %v, want code %s and %q", c.in, m, c.code, c.text)
			}
			id, has := m["id"]
			if c.id != 0 && id != c.id || c.id == 0 && has {
				t.Fatalf("%s: id %v, want %v", c.in, id, c.id)
			}
		})
	}
	s.ReceiveBinary([]byte{1, 2, 3})
	if m := rec.expect(t, "error"); m["code"] != CodeBadRequest || !strings.Contains(m["message"].(string), "send JSON text frames") {
		t.Fatalf("binary: %v", m)
	}
	// The session survived all of it.
	send(s, `{"type":"ping","id":99}`)
	if m := rec.expect(t, "pong"); m["id"] != 99.0 {
		t.Fatalf("pong: %v", m)
	}
	if rec.closeCode() != 0 {
		t.Fatalf("closed with %d", rec.closeCode())
	}
}

func TestTooManyRooms(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.MaxRoomsPerSession = 2 })
	s, rec := open(t, h, Identity{Allow: allowAll()})
	for _, r := range []string{"a", "b"} {
		send(s, `{"type":"join","id":1,"room":"`+r+`"}`)
		rec.expect(t, "ack")
		rec.expect(t, "session:list")
	}
	send(s, `{"type":"join","id":2,"room":"c"}`)
	if m := rec.expect(t, "error"); m["code"] != CodeTooManyRooms || m["id"] != 2.0 {
		t.Fatalf("third room: %v", m)
	}
	// Joining a room again is not a new room.
	send(s, `{"type":"join","id":3,"room":"a"}`)
	rec.expect(t, "ack")
	rec.expect(t, "session:list")
	send(s, `{"type":"leave","id":4,"room":"a"}`)
	rec.expect(t, "ack")
	send(s, `{"type":"join","id":5,"room":"c"}`)
	rec.expect(t, "ack")
}

func TestFlood(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 0.001, Burst: 3, CloseAfter: 5}
	})
	s, rec := open(t, h, Identity{})
	for i := 0; i < 20; i++ {
		send(s, `{"type":"ping","id":`+string(rune('0'+i%10))+`}`)
	}
	for i := 0; i < 3; i++ {
		rec.expect(t, "pong")
	}
	// Refusals 1..CloseAfter get an error; the next one closes.
	for i := 0; i < 5; i++ {
		if m := rec.expect(t, "error"); m["code"] != CodeRateLimited || m["id"] == nil {
			t.Fatalf("flood %d: %v", i, m)
		}
	}
	if c := rec.closeCode(); c != frame.CloseRateLimited {
		t.Fatalf("close code %d, want 4008", c)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return h.Sessions() == 0 }, "session not released")
	rec.quiet(t, 20*time.Millisecond)
}

func TestClosedLeavesRooms(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	a, ra := open(t, h, Identity{Session: "a", Rooms: []string{"lobby"}})
	_, rb := open(t, h, Identity{Session: "b", Rooms: []string{"lobby"}})
	ra.expect(t, "session:list")
	rb.expect(t, "session:list")
	ra.expect(t, "session:connected")
	a.Closed(frame.CloseNormal)
	a.Closed(frame.CloseNormal) // idempotent
	m := rb.expect(t, "session:disconnected")
	if m["session"] != "a" || m["count"] != 1.0 || m["room"] != "lobby" {
		t.Fatalf("disconnected: %v", m)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return h.Sessions() == 1 }, "sessions %d", h.Sessions())
	send(a, `{"type":"ping"}`) // ignored after Closed
	ra.quiet(t, 20*time.Millisecond)
}

func TestSessionTakeover(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	_, r1 := open(t, h, Identity{Session: "same", Rooms: []string{"lobby"}})
	r1.expect(t, "session:list")
	_, r2 := open(t, h, Identity{Session: "same", Rooms: []string{"lobby"}})
	if r1.closeCode() != frame.ClosePolicy {
		t.Fatalf("old connection: close %d", r1.closeCode())
	}
	l := r2.expect(t, "session:list")
	if !hasAll(sessionsOf(l), "same") {
		t.Fatalf("list after takeover: %v", l)
	}
	if h.Sessions() != 1 {
		t.Fatalf("sessions %d", h.Sessions())
	}
}

// TestSessionMemory checks the Hub's share of the ≤ 2 KiB per idle
// connection budget (DESIGN.md): a session that joined one room, with its
// presence entry, its map entries and its share of the room.
func TestSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few thousand sessions")
	}
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.Presence = nil })
	const n = 2000
	conns := make([]nopConn, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sessions := make([]*Session, n)
	for i := range sessions {
		sessions[i] = h.Open(Identity{User: "user" + strconv.Itoa(i), Meta: json.RawMessage(`{"n":1}`), Rooms: []string{"lobby"}}, conns[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := int64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d bytes per idle session in one room (Session struct: %d)", per, unsafe.Sizeof(Session{}))
	if per > 1024 {
		t.Fatalf("%d bytes per session: over the 1 KiB share of the 2 KiB budget", per)
	}
	runtime.KeepAlive(sessions)
}

// FuzzReceive feeds arbitrary client messages to one session: no panic
// (which would close with 1011), every server message valid JSON, and
// every client message answered by at least one message.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","id":1,"room":"lobby","meta":{"a":1}}`,
		`{"type":"publish","room":"lobby","event":"e","data":"\u2028x","echo":false}`,
		`{"type":"rpc","id":2,"method":"m.x","data":[1,{"b":null}]}`,
		`{"type":"leave","room":"lobby"}`, `{"type":"presence","room":"lobby"}`,
		`{"type":"send","event":"x","data":1e400}`, `{"type":"ping","id":18446744073709551615}`,
		`{"type":"ping","id":18446744073709551616}`, "\xff\xfe", `{"type":"join","room":"a\u0000b"}`,
	} {
		f.Add([]byte(s))
	}
	srv := bustest.RunServer(f)
	h := startHub(f, srv, "n1", func(o *Options) {
		o.RateLimit.PerSecond = -1
		o.RPCTimeout = 10 * time.Millisecond
	})
	rec := &recorder{}
	s := h.Open(Identity{Session: "fuzz", Allow: names.All()}, rec)
	rec.session.Store(s)
	f.Fuzz(func(t *testing.T, msg []byte) {
		rec.mu.Lock()
		before := len(rec.msgs)
		rec.mu.Unlock()
		s.Receive(msg)
		rec.mu.Lock()
		after, bad, code := len(rec.msgs), rec.bad, rec.code
		rec.mu.Unlock()
		if bad != nil {
			t.Fatal(bad)
		}
		if code != 0 {
			t.Fatalf("connection closed with %d", code)
		}
		var probe struct{ Type string }
		isRPC := json.Unmarshal(msg, &probe) == nil && probe.Type == "rpc"
		isSilent := json.Unmarshal(msg, &probe) == nil && (probe.Type == "publish" || probe.Type == "send" || probe.Type == "leave")
		if after == before && !isRPC && !isSilent {
			t.Fatalf("no answer to %q", msg)
		}
	})
}
