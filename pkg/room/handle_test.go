package room

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/presence"
)

func TestJoinPublishEchoLeave(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	a, ra := open(t, h, Identity{Session: "a", User: "ada", Allow: allowAll()})
	b, rb := open(t, h, Identity{Session: "b", User: "bob", Allow: allowAll()})

	send(a, `{"type":"join","id":1,"room":"chat.1","meta":{"color":"red"}}`)
	if m := ra.expect(t, "ack"); m["id"] != 1.0 {
		t.Fatalf("ack: %v", m)
	}
	l := ra.expect(t, "session:list")
	if !hasAll(sessionsOf(l), "a") {
		t.Fatalf("list: %v", l)
	}
	send(b, `{"type":"join","id":2,"room":"chat.1"}`)
	rb.expect(t, "ack")
	if l := rb.expect(t, "session:list"); !hasAll(sessionsOf(l), "a", "b") || l["count"] != 2.0 {
		t.Fatalf("list: %v", l)
	}
	c := ra.expect(t, "session:connected")
	want := `{"type":"session:connected","room":"chat.1","session":"b","user":"bob","meta":null,"count":2}`
	if ra.raw[len(ra.raw)-1] != want {
		t.Fatalf("connected:\n got %s\nwant %s", ra.raw[len(ra.raw)-1], want)
	}
	_ = c

	send(a, `{"type":"publish","id":3,"room":"chat.1","event":"say","data":{"text":"hi"}}`)
	// The ack and the sender's own copy of the event may come in any order.
	ra.has(t, "ack 3", func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == 3.0 })
	for _, r := range []*recorder{ra, rb} {
		e := r.findType(t, "event")
		if e["room"] != "chat.1" || e["event"] != "say" || e["from"] != "a" || e["data"].(map[string]any)["text"] != "hi" {
			t.Fatalf("event: %v", e)
		}
	}
	if got := rb.raw[len(rb.raw)-1]; got != `{"type":"event","room":"chat.1","event":"say","data":{"text":"hi"},"from":"a"}` {
		t.Fatalf("event JSON: %s", got)
	}

	// echo:false: b gets it, a does not; a's next event is the one after.
	send(a, `{"type":"publish","room":"chat.1","data":"quiet","echo":false}`)
	if e := rb.findType(t, "event"); e["data"] != "quiet" || e["event"] != "message" {
		t.Fatalf("no-echo event at b: %v", e)
	}
	send(b, `{"type":"publish","room":"chat.1","data":"loud"}`)
	if e := ra.findType(t, "event"); e["data"] != "loud" || e["from"] != "b" {
		t.Fatalf("a got %v, want the 'loud' event (the 'quiet' one must be skipped)", e)
	}
	if e := rb.findType(t, "event"); e["data"] != "loud" {
		t.Fatalf("b's echo: %v", e)
	}

	// Joining again with new meta: others hear session:updated.
	send(a, `{"type":"join","id":4,"room":"chat.1","meta":{"color":"blue"}}`)
	ra.find(t, "ack 4", func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == 4.0 })
	u := rb.findType(t, "session:updated")
	if u["session"] != "a" || u["meta"].(map[string]any)["color"] != "blue" {
		t.Fatalf("updated: %v", u)
	}

	// presence and ping.
	send(b, `{"type":"presence","id":5,"room":"chat.1"}`)
	p := rb.findType(t, "session:list")
	if p["id"] != 5.0 || !hasAll(sessionsOf(p), "a", "b") {
		t.Fatalf("presence: %v", p)
	}
	send(b, `{"type":"ping","id":6}`)
	if m := rb.expect(t, "pong"); m["id"] != 6.0 {
		t.Fatalf("pong: %v", m)
	}

	send(a, `{"type":"leave","id":7,"room":"chat.1"}`)
	ra.find(t, "ack 7", func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == 7.0 })
	d := rb.findType(t, "session:disconnected")
	if d["session"] != "a" || d["count"] != 1.0 || d["user"] != "ada" {
		t.Fatalf("disconnected: %v", d)
	}
	send(b, `{"type":"publish","room":"chat.1","data":1}`)
	rb.findType(t, "event")
	ra.quiet(t, 50*time.Millisecond)
	send(b, `{"type":"leave","room":"chat.1"}`)
	bustest.Eventually(t, 5*time.Second, func() bool { return h.Rooms() == 0 }, "rooms %d", h.Rooms())
}

func TestSend(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	nc := bustest.Connect(t, srv)
	sub, err := nc.SubscribeSync("rc.send.s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, h, Identity{Session: "s1", User: "ada"})
	send(s, `{"type":"send","id":1,"event":"typing","data":{"x":1},"headers":{"Rc-User":"root"}}`)
	rec.expect(t, "ack")
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"x":1}` || m.Header.Get(HeaderEvent) != "typing" || m.Header.Get(HeaderUser) != "ada" || len(m.Header) != 2 {
		t.Fatalf("send: %q %v", m.Data, m.Header)
	}
}

func TestRPC(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.RPCTimeout = 200 * time.Millisecond })
	nc := bustest.Connect(t, srv)
	var hdr nats.Header
	if _, err := nc.Subscribe("rc.rpc.math.double", func(m *nats.Msg) {
		hdr = m.Header
		var n int
		_ = json.Unmarshal(m.Data, &n)
		_ = m.Respond([]byte(strings.Repeat(" ", 1) + "{\n\"n\": " + string(rune('0'+2*n)) + "}"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("rc.rpc.slow", func(m *nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("rc.rpc.text", func(m *nats.Msg) { _ = m.Respond([]byte("plain")) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, h, Identity{Session: "s1", User: "ada", Meta: json.RawMessage(`{"a": 1}`)})

	send(s, `{"type":"rpc","id":1,"method":"math.double","data":3}`)
	m := rec.expect(t, "reply")
	if m["id"] != 1.0 || m["data"].(map[string]any)["n"] != 6.0 {
		t.Fatalf("reply: %v", m)
	}
	if rec.raw[len(rec.raw)-1] != `{"type":"reply","id":1,"data":{"n":6}}` {
		t.Fatalf("reply JSON: %s", rec.raw[len(rec.raw)-1])
	}
	if hdr.Get(HeaderSession) != "s1" || hdr.Get(HeaderUser) != "ada" || hdr.Get(HeaderMeta) != `{"a":1}` {
		t.Fatalf("rpc headers: %v", hdr)
	}
	send(s, `{"type":"rpc","id":2,"method":"text"}`)
	if m := rec.expect(t, "reply"); m["data"] != "plain" {
		t.Fatalf("text reply: %v", m)
	}
	send(s, `{"type":"rpc","id":3,"method":"nobody.home"}`)
	if m := rec.expect(t, "error"); m["code"] != CodeNotFound || m["id"] != 3.0 {
		t.Fatalf("no responders: %v", m)
	}
	start := time.Now()
	send(s, `{"type":"rpc","id":4,"method":"slow"}`)
	// Receive returned at once: a ping is answered before the rpc times out.
	send(s, `{"type":"ping","id":5}`)
	if m := rec.expect(t, "pong"); m["id"] != 5.0 {
		t.Fatalf("pong: %v", m)
	}
	if m := rec.expect(t, "error"); m["code"] != CodeTimeout || m["id"] != 4.0 {
		t.Fatalf("timeout: %v", m)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("timeout after %v", d)
	}
}

func TestNATSDown(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	s, rec := open(t, h, Identity{Allow: allowAll(), Rooms: []string{"lobby"}})
	rec.expect(t, "session:list")
	srv.Shutdown()
	srv.WaitForShutdown()
	bustest.Eventually(t, 5*time.Second, func() bool { return !h.natsUp() }, "still connected")
	for i, msg := range []string{
		`{"type":"publish","id":1,"room":"lobby","data":1}`,
		`{"type":"join","id":2,"room":"other"}`,
		`{"type":"send","id":3,"data":1}`,
		`{"type":"rpc","id":4,"method":"x"}`,
	} {
		send(s, msg)
		if m := rec.expect(t, "error"); m["code"] != CodeUnavailable || m["id"] != float64(i+1) {
			t.Fatalf("%s: %v", msg, m)
		}
	}
	// Things that need no NATS still work.
	send(s, `{"type":"ping","id":9}`)
	rec.expect(t, "pong")
	send(s, `{"type":"presence","id":10,"room":"lobby"}`)
	rec.expect(t, "session:list")
	send(s, `{"type":"leave","id":11,"room":"lobby"}`)
	rec.expect(t, "ack")
}

func TestCountOnlyRoom(t *testing.T) {
	srv := bustest.RunServer(t)
	nc := bustest.Connect(t, srv)
	tr, err := presence.New(presence.Options{Node: "n1", NC: nc, CountOnlyAbove: 3, CountInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, srv, "n1", func(o *Options) { o.NC, o.Presence = nc, tr })
	sessions := map[string]*Session{}
	recs := map[string]*recorder{}
	for _, id := range []string{"a", "b", "c"} {
		sessions[id], recs[id] = open(t, h, Identity{Session: id, Rooms: []string{"big"}})
		recs[id].expect(t, "session:list")
	}
	if m := recs["a"].findType(t, "session:connected"); m["session"] != "b" {
		t.Fatalf("connected: %v", m)
	}
	// The fourth member tips the room into count-only: everyone gets a new,
	// empty list with the count, the joiner too.
	sessions["d"], recs["d"] = open(t, h, Identity{Session: "d", Rooms: []string{"big"}})
	want := `{"type":"session:list","room":"big","sessions":[],"count":4,"count_only":true}`
	for _, id := range []string{"a", "b", "c", "d"} {
		r := recs[id]
		r.find(t, "count-only list", func(m map[string]any) bool { return m["type"] == "session:list" && m["count_only"] == true })
		if !slices.Contains(r.raw, want) {
			t.Fatalf("%s lists: %v", id, r.raw)
		}
	}
	sessions["e"], recs["e"] = open(t, h, Identity{Session: "e", Rooms: []string{"big"}})
	recs["e"].expect(t, "session:list")
	ra := recs["a"]
	if m := ra.findType(t, "session:count"); m["count"] != 5.0 {
		t.Fatalf("count: %v", m)
	}
	if ra.raw[len(ra.raw)-1] != `{"type":"session:count","room":"big","count":5}` {
		t.Fatalf("count JSON: %s", ra.raw[len(ra.raw)-1])
	}
	// Back to 3/4 of the threshold or less: a full list again.
	for _, id := range []string{"c", "d", "e"} {
		sessions[id].Closed(frame.CloseNormal)
	}
	l := ra.find(t, "full list", func(m map[string]any) bool { return m["type"] == "session:list" && m["count_only"] == nil })
	if !hasAll(sessionsOf(l), "a", "b") || l["count"] != 2.0 {
		t.Fatalf("list after count-only: %v", l)
	}
}
