package room

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/names"
)

func TestDirectMessages(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	nc := bustest.Connect(t, srv)
	_, r1 := open(t, h, Identity{Session: "s1", User: "ada"})
	_, r2 := open(t, h, Identity{Session: "s2", User: "ada"})
	_, r3 := open(t, h, Identity{Session: "s3", User: "bob"})

	msg := nats.NewMsg("rc.session.s1")
	msg.Header.Set(HeaderEvent, "note")
	msg.Data = []byte(`{"n":1}`)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	e := r1.expect(t, "event")
	if r1.raw[len(r1.raw)-1] != `{"type":"event","event":"note","data":{"n":1}}` {
		t.Fatalf("direct: %v", e)
	}
	if err := nc.Publish("rc.user.ada", []byte("hello ada")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{r1, r2} {
		if e := r.expect(t, "event"); e["data"] != "hello ada" || e["event"] != "message" {
			t.Fatalf("user message: %v", e)
		}
	}
	// Users with dots in their id are reachable too (rc.user.> subscription).
	_, r4 := open(t, h, Identity{Session: "s4", User: "c@d.example"})
	if err := nc.Publish("rc.user.c@d.example", []byte("1")); err != nil {
		t.Fatal(err)
	}
	r4.expect(t, "event")
	if err := nc.Publish("rc.session.s3", []byte("2")); err != nil {
		t.Fatal(err)
	}
	r3.expect(t, "event")
	r1.quiet(t, 20*time.Millisecond)
}

func TestServerPublish(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	nc := bustest.Connect(t, srv)
	_, rec := open(t, h, Identity{Session: "s1", Rooms: []string{"news"}})
	rec.expect(t, "session:list")

	cases := []struct {
		event string
		body  string
		want  string
	}{
		{"headline", `{"title":"x"}`, `{"type":"event","room":"news","event":"headline","data":{"title":"x"}}`},
		{"", `plain text`, `{"type":"event","room":"news","event":"message","data":"plain text"}`},
		{"multi", "{\n  \"a\": [1,\n 2]\n}\n", `{"type":"event","room":"news","event":"multi","data":{"a":[1,2]}}`},
		{"bin", "\xff\x00\"", `{"type":"event","room":"news","event":"bin","data":"\ufffd\u0000\""}`},
		{"empty", ``, `{"type":"event","room":"news","event":"empty","data":null}`},
		{"quoted", `"hi"`, `{"type":"event","room":"news","event":"quoted","data":"hi"}`},
		// JSON with invalid UTF-8 in a string: fixed, or browsers would fail
		// the frame with 1007.
		{"latin1", "{\"name\":\"caf\xe9\"}", "{\"type\":\"event\",\"room\":\"news\",\"event\":\"latin1\",\"data\":{\"name\":\"caf\uFFFD\"}}"},
	}
	for _, c := range cases {
		msg := nats.NewMsg("rc.room.news")
		if c.event != "" {
			msg.Header.Set(HeaderEvent, c.event)
		}
		msg.Data = []byte(c.body)
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		rec.expect(t, "event")
		if got := rec.raw[len(rec.raw)-1]; got != c.want {
			t.Errorf("body %q:\n got %s\nwant %s", c.body, got, c.want)
		}
	}
	if err := h.Publish(context.Background(), "news", "api", []byte(`[1]`)); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, "event")
	if got := rec.raw[len(rec.raw)-1]; got != `{"type":"event","room":"news","event":"api","data":[1]}` {
		t.Fatalf("Hub.Publish: %s", got)
	}
	if err := h.Publish(context.Background(), "a b", "", nil); !errors.Is(err, names.ErrInvalid) {
		t.Fatalf("bad room: %v", err)
	}
	if err := h.Publish(context.Background(), "news", "a\r\nb", nil); err == nil {
		t.Fatal("bad event accepted")
	}
}

// TestTwoNodes runs two Hubs on one NATS server, as two nodes.
func TestTwoNodes(t *testing.T) {
	srv := bustest.RunServer(t)
	h1 := startHub(t, srv, "n1", nil)
	h2 := startHub(t, srv, "n2", nil)
	a, ra := open(t, h1, Identity{Session: "a", User: "ada", Rooms: []string{"lobby"}})
	ra.expect(t, "session:list")
	b, rb := open(t, h2, Identity{Session: "b", User: "bob", Rooms: []string{"lobby"}})
	if l := rb.expect(t, "session:list"); !hasAll(sessionsOf(l), "a", "b") {
		t.Fatalf("n2 list: %v", l)
	}
	if c := ra.expect(t, "session:connected"); c["session"] != "b" || c["count"] != 2.0 {
		t.Fatalf("n1 heard: %v", c)
	}
	send(a, `{"type":"publish","room":"lobby","data":"from a"}`)
	if e := rb.expect(t, "event"); e["data"] != "from a" || e["from"] != "a" {
		t.Fatalf("n2 event: %v", e)
	}
	if e := ra.expect(t, "event"); e["data"] != "from a" {
		t.Fatalf("n1 echo: %v", e)
	}
	send(b, `{"type":"publish","room":"lobby","data":"from b","echo":false}`)
	if e := ra.expect(t, "event"); e["data"] != "from b" {
		t.Fatalf("n1 event: %v", e)
	}
	send(a, `{"type":"presence","room":"lobby"}`)
	if l := ra.expect(t, "session:list"); !hasAll(sessionsOf(l), "a", "b") {
		t.Fatalf("n1 presence: %v", l)
	}
	b.Closed(frame.CloseNormal)
	if d := ra.expect(t, "session:disconnected"); d["session"] != "b" || d["count"] != 1.0 {
		t.Fatalf("n1 heard leave: %v", d)
	}
	rb.quiet(t, 20*time.Millisecond)

	// A graceful shutdown of n2 is heard at once on n1.
	c, rc := open(t, h2, Identity{Session: "c", Rooms: []string{"lobby"}})
	_ = c
	rc.expect(t, "session:list")
	ra.expect(t, "session:connected")
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	if d := ra.expect(t, "session:disconnected"); d["session"] != "c" {
		t.Fatalf("n1 after n2 closed: %v", d)
	}
}

type nopConn struct{ id int }

func (nopConn) Send(*frame.Prepared) error { return nil }
func (nopConn) Close(uint16, string)       {}

// BenchmarkFanout measures one room message delivered to 10,000 local
// members whose Send does nothing: the cost of encoding once and queueing
// the same frame everywhere. Allocations per op must not grow with members.
func BenchmarkFanout(b *testing.B) {
	srv := bustest.RunServer(b)
	h := startHub(b, srv, "n1", nil)
	const members = 10000
	r := &room{name: "bench.room"}
	list := make([]*Session, members)
	for i := range list {
		list[i] = &Session{hub: h, conn: nopConn{i}, id: "s" + strconv.Itoa(i)}
	}
	r.members.Store(&list)
	h.mu.Lock()
	h.rooms[r.name] = r
	h.mu.Unlock()
	msg := nats.NewMsg("rc.room.bench.room")
	msg.Header.Set(HeaderEvent, "tick")
	msg.Header.Set(HeaderFrom, "s1")
	msg.Data = []byte(`{"seq":1,"text":"hello, room"}`)
	scratch := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.deliverRoom(msg, &scratch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/members, "ns/member")
}

// TestFanoutAllocs pins the benchmark's promise: allocations per message do
// not depend on the number of members.
func TestFanoutAllocs(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	count := func(members int) float64 {
		r := &room{name: "r" + strconv.Itoa(members)}
		list := make([]*Session, members)
		for i := range list {
			list[i] = &Session{hub: h, conn: nopConn{i}, id: strconv.Itoa(i)}
		}
		r.members.Store(&list)
		scratch := make([]byte, 0, 1024)
		var hdr nats.Header
		data := []byte(`{"a":1}`)
		return testing.AllocsPerRun(50, func() { h.fanout(r, hdr, data, &scratch) })
	}
	if small, big := count(10), count(5000); big != small {
		t.Fatalf("allocations grow with members: %v for 10, %v for 5000", small, big)
	}
}
