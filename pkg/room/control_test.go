package room

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
)

func TestKick(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	_, r1 := open(t, h, Identity{Session: "a1", User: "ada"})
	_, r2 := open(t, h, Identity{Session: "a2", User: "ada"})
	_, r3 := open(t, h, Identity{Session: "b1", User: "bob"})

	for _, bad := range []struct {
		session, user string
		code          uint16
		want          string
	}{
		{"", "", 0, `needs "session" or "user"`},
		{"a1", "", 1005, "cannot be sent"},
		{"a1", "", 999, "cannot be sent"},
	} {
		n, err := h.Kick(bad.session, bad.user, bad.code, "")
		var ce *ControlError
		if n != 0 || !errors.As(err, &ce) || ce.Code != CodeBadRequest || !strings.Contains(ce.Message, bad.want) {
			t.Errorf("Kick(%q, %q, %d) = %d, %v; want bad_request %q", bad.session, bad.user, bad.code, n, err, bad.want)
		}
	}
	if n, err := h.Kick("a1", "bob", 0, ""); n != 0 || err != nil {
		t.Fatalf("kick of a1 as bob's: %d %v", n, err)
	}
	if n, err := h.Kick("nobody", "", 0, ""); n != 0 || err != nil {
		t.Fatalf("kick of an unknown session: %d %v", n, err)
	}
	if n, err := h.Kick("b1", "", 0, "go away"); n != 1 || err != nil {
		t.Fatalf("kick b1: %d %v", n, err)
	}
	if r3.closeCode() != frame.CloseForbidden || r3.reason != "go away" {
		t.Fatalf("b1 closed with %d %q; want 4003 (the default) and the reason", r3.closeCode(), r3.reason)
	}
	if n, err := h.Kick("", "ada", 1012, "service restart"); n != 2 || err != nil {
		t.Fatalf("kick ada: %d %v", n, err)
	}
	for _, r := range []*recorder{r1, r2} {
		if r.closeCode() != 1012 {
			t.Fatalf("ada's session closed with %d", r.closeCode())
		}
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return h.Sessions() == 0 }, "sessions left: %d", h.Sessions())
	long := strings.Repeat("é", 100)
	_, r4 := open(t, h, Identity{Session: "c1"})
	if n, _ := h.Kick("c1", "", 4000, long); n != 1 || len(r4.reason) > frame.MaxCloseReason || !strings.HasPrefix(long, r4.reason) {
		t.Fatalf("long reason: %d bytes %q", len(r4.reason), r4.reason)
	}
}

func TestControlJoinLeave(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	nc := bustest.Connect(t, srv)
	s, rec := open(t, h, Identity{Session: "s1", User: "ada"}) // allowed nothing
	_, peer := open(t, h, Identity{Session: "p1", Rooms: []string{"vip.1"}})
	peer.expect(t, "session:list")

	send(s, `{"type":"join","id":1,"room":"vip.1"}`)
	if m := rec.expect(t, "error"); m["code"] != CodeForbidden {
		t.Fatalf("join before the grant: %v", m)
	}
	if found, err := h.JoinSession("nobody", "vip.1", nil); found || err != nil {
		t.Fatalf("JoinSession(unknown) = %v %v", found, err)
	}
	if _, err := h.JoinSession("s1", "bad room", nil); err == nil {
		t.Fatal("JoinSession accepted an invalid room")
	}
	found, err := h.JoinSession("s1", "vip.1", json.RawMessage(`{"seat":3}`))
	if !found || err != nil {
		t.Fatalf("JoinSession = %v %v", found, err)
	}
	l := rec.expect(t, "session:list")
	if l["room"] != "vip.1" || !hasAll(sessionsOf(l), "s1", "p1") {
		t.Fatalf("list after control join: %v", l)
	}
	if c := peer.findType(t, "session:connected"); c["session"] != "s1" || c["meta"].(map[string]any)["seat"] != 3.0 {
		t.Fatalf("peer: %v", c)
	}
	// Granted: the session may publish there, and join it again.
	send(s, `{"type":"publish","id":2,"room":"vip.1","event":"hi"}`)
	rec.has(t, "ack 2", func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == 2.0 })
	if e := peer.findType(t, "event"); e["event"] != "hi" {
		t.Fatalf("peer event: %v", e)
	}

	found, left, err := h.LeaveSession("s1", "vip.1")
	if !found || !left || err != nil {
		t.Fatalf("LeaveSession = %v %v %v", found, left, err)
	}
	d := rec.find(t, "self session:disconnected", func(m map[string]any) bool { return m["type"] == "session:disconnected" })
	if d["session"] != "s1" || d["room"] != "vip.1" || d["count"] != 1.0 {
		t.Fatalf("self notice: %v", d)
	}
	if d := peer.findType(t, "session:disconnected"); d["session"] != "s1" {
		t.Fatalf("peer: %v", d)
	}
	// The grant is withdrawn.
	send(s, `{"type":"join","id":3,"room":"vip.1"}`)
	if m := rec.expect(t, "error"); m["code"] != CodeForbidden || m["id"] != 3.0 {
		t.Fatalf("join after control leave: %v", m)
	}
	if found, left, err := h.LeaveSession("s1", "vip.1"); !found || left || err != nil {
		t.Fatalf("second LeaveSession = %v %v %v", found, left, err)
	}
	_ = nc
}

func TestCloseRoom(t *testing.T) {
	srv := bustest.RunServer(t)
	h1 := startHub(t, srv, "n1", nil)
	h2 := startHub(t, srv, "n2", nil)
	a, ra := open(t, h1, Identity{Session: "a", Allow: allowAll(), Rooms: []string{"doc.1", "other"}})
	_, rb := open(t, h2, Identity{Session: "b", Rooms: []string{"doc.1"}})
	ra.expect(t, "session:list")
	ra.expect(t, "session:list")
	rb.expect(t, "session:list")
	bustest.Eventually(t, 5*time.Second, func() bool {
		_, n, _ := h2.pres.View("doc.1")
		return n == 2
	}, "presence")

	if n, err := h1.CloseRoom("doc.1", 0, "archived", false); n != 1 || err != nil {
		t.Fatalf("CloseRoom on n1 = %d %v", n, err)
	}
	d := ra.find(t, "self notice", func(m map[string]any) bool { return m["type"] == "session:disconnected" })
	if d["session"] != "a" || d["room"] != "doc.1" {
		t.Fatalf("self notice: %v", d)
	}
	e := ra.expect(t, "error")
	if want := `{"type":"error","code":"forbidden","message":"room \"doc.1\" was closed by the server: archived","room":"doc.1"}`; ra.raw[len(ra.raw)-1] != want {
		t.Fatalf("error:\n got %s\nwant %s (%v)", ra.raw[len(ra.raw)-1], want, e)
	}
	if d := rb.findType(t, "session:disconnected"); d["session"] != "a" {
		t.Fatalf("peer on n2: %v", d)
	}
	// a is still connected, in its other room, and may join again.
	send(a, `{"type":"join","id":1,"room":"doc.1"}`)
	ra.find(t, "ack", func(m map[string]any) bool { return m["type"] == "ack" })

	if n, err := h2.CloseRoom("doc.1", 4000, "bye", true); n != 1 || err != nil {
		t.Fatalf("CloseRoom close on n2 = %d %v", n, err)
	}
	if rb.closeCode() != 4000 || rb.reason != "bye" {
		t.Fatalf("b closed with %d %q", rb.closeCode(), rb.reason)
	}
	if n, err := h2.CloseRoom("doc.1", 0, "", false); n != 0 || err != nil {
		t.Fatalf("CloseRoom of a room without local members = %d %v", n, err)
	}
	if _, err := h1.CloseRoom("a..b", 0, "", false); err == nil {
		t.Fatal("CloseRoom accepted an invalid room")
	}
}

func TestRPCAnswers(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.MaxReply = 1000 })
	nc := bustest.Connect(t, srv)
	answers := map[string]*nats.Msg{
		"refuse":  {Header: nats.Header{HeaderError: {"forbidden"}}, Data: []byte("members only")},
		"weird":   {Header: nats.Header{HeaderError: {"Not A Code!"}}, Data: []byte("x")},
		"micro":   {Header: nats.Header{"Nats-Service-Error-Code": {"500"}, "Nats-Service-Error": {"db down"}}},
		"big":     {Data: []byte(`"` + strings.Repeat("x", 2000) + `"`)},
		"binary":  {Data: []byte{0xff, 0xfe, 'o', 'k', 0}},
		"nothing": {},
	}
	for method, a := range answers {
		if _, err := nc.Subscribe("rc.rpc."+method, func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Header, r.Data = a.Header, a.Data
			_ = m.RespondMsg(r)
		}); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc.Flush()
	s, rec := open(t, h, Identity{Session: "s1"})
	call := func(method string) map[string]any {
		t.Helper()
		send(s, `{"type":"rpc","id":7,"method":"`+method+`"}`)
		m := rec.next(t)
		if m["id"] != 7.0 {
			t.Fatalf("%s: %v", method, m)
		}
		return m
	}
	if m := call("refuse"); m["type"] != "error" || m["code"] != "forbidden" || m["message"] != "members only" {
		t.Errorf("Rc-Error answer: %v", m)
	}
	if m := call("weird"); m["type"] != "error" || m["code"] != CodeUnavailable {
		t.Errorf("invalid Rc-Error code: %v", m)
	}
	if m := call("micro"); m["type"] != "error" || m["code"] != CodeUnavailable || !strings.Contains(m["message"].(string), "db down") {
		t.Errorf("micro error: %v", m)
	}
	if m := call("big"); m["type"] != "error" || m["code"] != CodeTooLarge {
		t.Errorf("too large: %v", m)
	}
	if m := call("binary"); m["type"] != "reply" || m["data"] != "\ufffd\ufffdok\u0000" {
		t.Errorf("binary answer: %q", m)
	}
	if m := call("nothing"); m["type"] != "reply" || m["data"] != nil {
		t.Errorf("empty answer: %v", m)
	}
}
