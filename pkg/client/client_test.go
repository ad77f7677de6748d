package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/roomcast/roomcast/pkg/client"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to n and returns it with the server end, after
// the default welcome.
func dial(t *testing.T, n *fakeNode, o *client.Options) (*client.Client, *peer) {
	t.Helper()
	ch := async(func() (*client.Client, error) { return client.Dial(ctxT(t), n.url+"/chat", o) })
	p := n.accept()
	p.welcome()
	c, err := wait(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	// Drop the server end first: the fake node does not answer close
	// frames, and Close would wait for it.
	t.Cleanup(func() {
		p.conn.Close()
		c.Close()
	})
	return c, p
}

// nextEvent returns the next event from c's channel.
func nextEvent(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events channel closed: %v", c.Err())
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return client.Event{}
	}
}

func TestDialWelcomeAndHeaders(t *testing.T) {
	n := newFakeNode(t, nil)
	h := http.Header{"Origin": {"https://app.example"}}
	c, p := dial(t, n, &client.Options{Header: h})
	w := c.Welcome()
	if w.Session != "s1" || w.Node != "n1" || w.User != "ann" || string(w.Meta) != `{"color":"red"}` ||
		len(w.Rooms) != 1 || w.Rooms[0] != "lobby" || w.PingInterval != 25*time.Second {
		t.Errorf("welcome = %+v", w)
	}
	if p.origin != "https://app.example" || p.uri != "/chat" {
		t.Errorf("server saw origin %q uri %q", p.origin, p.uri)
	}
}

func TestJoinWaitsForAckAndList(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ch := async(func() ([]client.Member, error) {
		return c.Join(ctxT(t), "chat.general", map[string]string{"nick": "a"})
	})
	m := p.expect("join")
	if m["room"] != "chat.general" || m["meta"].(map[string]any)["nick"] != "a" {
		t.Fatalf("join = %v", m)
	}
	// ack and list in one batched frame, then an event in the same batch.
	p.send(
		`{"type":"ack","id":`+idOf(m)+`}`,
		`{"type":"session:list","room":"chat.general","sessions":[{"session":"s1","user":"ann","meta":{"nick":"a"},"connected_at":1700000000000},{"session":"s2","user":"bob","connected_at":1700000000001}]}`,
		`{"type":"event","room":"chat.general","event":"msg","data":{"text":"hi"},"from":"s2","seq":7}`,
	)
	members, err := wait(t, ch)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[0].Session != "s1" || string(members[0].Meta) != `{"nick":"a"}` ||
		members[1].User != "bob" || members[1].ConnectedAt != 1700000000001 {
		t.Errorf("members = %+v", members)
	}
	ev := nextEvent(t, c)
	if ev.Type != client.TypeSessionList || len(ev.Sessions) != 2 {
		t.Errorf("first event = %+v", ev)
	}
	ev = nextEvent(t, c)
	if ev.Type != client.TypeEvent || ev.Room != "chat.general" || ev.Event != "msg" || ev.From != "s2" ||
		ev.Seq != 7 || string(ev.Data) != `{"text":"hi"}` || !strings.Contains(string(ev.Raw), `"seq":7`) {
		t.Errorf("second event = %+v", ev)
	}
}

func TestJoinListBeforeAck(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ch := async(func() ([]client.Member, error) { return c.Join(ctxT(t), "r", nil) })
	m := p.expect("join")
	if _, ok := m["meta"]; ok {
		t.Errorf("nil meta was sent: %v", m)
	}
	p.send(`{"type":"session:list","room":"r","sessions":[{"session":"s1"}]}`)
	select {
	case <-ch:
		t.Fatal("Join returned before the ack")
	case <-time.After(50 * time.Millisecond):
	}
	p.send(`{"type":"ack","id":` + idOf(m) + `}`)
	if members, err := wait(t, ch); err != nil || len(members) != 1 {
		t.Fatalf("Join = %v, %v", members, err)
	}
}

func TestAcksCorrelateByID(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	first := async(func() (struct{}, error) { return struct{}{}, c.Publish(ctxT(t), "r", "a", 1) })
	m1 := p.expect("publish")
	second := async(func() (struct{}, error) { return struct{}{}, c.Publish(ctxT(t), "r", "b", 2, client.NoEcho()) })
	m2 := p.expect("publish")
	if m1["event"] != "a" || m1["data"] != 1.0 || m1["echo"] != nil {
		t.Errorf("first publish = %v", m1)
	}
	if m2["event"] != "b" || m2["echo"] != false {
		t.Errorf("second publish = %v", m2)
	}
	// Answer out of order: the second is refused, the first accepted.
	p.send(`{"type":"error","id":`+idOf(m2)+`,"code":"forbidden","message":"not allowed"}`,
		`{"type":"ack","id":`+idOf(m1)+`}`)
	if _, err := wait(t, first); err != nil {
		t.Errorf("first publish: %v", err)
	}
	_, err := wait(t, second)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeForbidden || e.Message != "not allowed" {
		t.Errorf("second publish: %v", err)
	}
}

func TestErrorBadRoom(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ch := async(func() ([]client.Member, error) { return c.Join(ctxT(t), "bad room", nil) })
	m := p.expect("join")
	p.send(`{"type":"error","id":` + idOf(m) + `,"code":"bad_request","message":"room \"bad room\" is invalid"}`)
	_, err := wait(t, ch)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeBadRequest {
		t.Fatalf("Join(bad room) = %v", err)
	}
	// An error for no pending id is an event, not lost.
	p.send(`{"type":"error","code":"bad_request","message":"invalid JSON"}`)
	if ev := nextEvent(t, c); ev.Type != client.TypeError || ev.Code != client.CodeBadRequest {
		t.Errorf("event = %+v", ev)
	}
}

func TestRPCSendPresencePing(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)

	rpc := async(func() (json.RawMessage, error) { return c.RPC(ctxT(t), "todo.add", map[string]int{"n": 1}) })
	m := p.expect("rpc")
	if m["method"] != "todo.add" {
		t.Errorf("rpc = %v", m)
	}
	p.send(`{"type":"reply","id":` + idOf(m) + `,"data":{"ok":true}}`)
	if data, err := wait(t, rpc); err != nil || string(data) != `{"ok":true}` {
		t.Errorf("RPC = %s, %v", data, err)
	}

	send := async(func() (struct{}, error) { return struct{}{}, c.Send(ctxT(t), "typing", nil) })
	m = p.expect("send")
	if m["event"] != "typing" || m["data"] != nil {
		t.Errorf("send = %v", m)
	}
	p.send(`{"type":"ack","id":` + idOf(m) + `}`)
	if _, err := wait(t, send); err != nil {
		t.Error(err)
	}

	pres := async(func() ([]client.Member, error) { return c.Presence(ctxT(t), "r") })
	p.expect("presence")
	p.send(`{"type":"session:list","room":"r","sessions":[{"session":"s1"},{"session":"s9"}]}`)
	if members, err := wait(t, pres); err != nil || len(members) != 2 {
		t.Errorf("Presence = %v, %v", members, err)
	}

	// A pong with the id, then one without (matched oldest first).
	ping := async(func() (struct{}, error) { return struct{}{}, c.Ping(ctxT(t)) })
	m = p.expect("ping")
	p.send(`{"type":"pong","id":` + idOf(m) + `}`)
	if _, err := wait(t, ping); err != nil {
		t.Error(err)
	}
	ping = async(func() (struct{}, error) { return struct{}{}, c.Ping(ctxT(t)) })
	p.expect("ping")
	p.send(`{"type":"pong"}`)
	if _, err := wait(t, ping); err != nil {
		t.Error(err)
	}
}

func TestPresenceEvents(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	p.send(
		`{"type":"session:connected","room":"r","session":"s2","user":"bob","meta":{"a":1},"count":2}`,
		`not json at all`,
		``,
		`{"type":"session:updated","room":"r","session":"s2","user":"bob","meta":{"a":2},"count":2}`,
		`{"type":"session:disconnected","room":"r","session":"s2","user":"bob","count":1}`,
		`{"type":"event","event":"dm","data":"psst"}`,
	)
	want := []string{client.TypeSessionConnected, client.TypeSessionUpdated, client.TypeSessionDisconnected, client.TypeEvent}
	for _, typ := range want {
		ev := nextEvent(t, c)
		if ev.Type != typ {
			t.Fatalf("event type %q, want %q", ev.Type, typ)
		}
		switch typ {
		case client.TypeSessionUpdated:
			if ev.Session != "s2" || ev.User != "bob" || string(ev.Meta) != `{"a":2}` || ev.Count != 2 {
				t.Errorf("updated = %+v", ev)
			}
		case client.TypeSessionDisconnected:
			if ev.Count != 1 {
				t.Errorf("disconnected = %+v", ev)
			}
		case client.TypeEvent:
			if ev.Room != "" || ev.From != "" || string(ev.Data) != `"psst"` {
				t.Errorf("direct message = %+v", ev)
			}
		}
	}
}

func TestFragmentedMessageAndServerPing(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	msg := []byte(`{"type":"event","room":"r","event":"big","data":"0123456789"}`)
	p.sendFrame(ws.OpText, false, msg[:10])
	p.sendFrame(ws.OpPing, true, []byte("hb")) // control frames may interleave
	p.sendFrame(ws.OpContinuation, false, msg[10:30])
	p.sendFrame(ws.OpContinuation, true, msg[30:])
	h, b := p.frame()
	if h.OpCode != ws.OpPong || string(b) != "hb" {
		t.Errorf("got %v %q, want pong \"hb\"", h.OpCode, b)
	}
	if ev := nextEvent(t, c); ev.Event != "big" || string(ev.Data) != `"0123456789"` {
		t.Errorf("event = %+v", ev)
	}
}

func TestServerCloseFailsPendingCalls(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ch := async(func() ([]client.Member, error) { return c.Join(ctxT(t), "r", nil) })
	p.expect("join")
	p.closeWith(client.CloseSlowConsumer, "slow consumer")
	_, err := wait(t, ch)
	var ce *client.CloseError
	if !errors.Is(err, client.ErrClosed) || !errors.As(err, &ce) || ce.Code != client.CloseSlowConsumer {
		t.Fatalf("pending Join = %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	if code, reason := c.CloseCode(); code != client.CloseSlowConsumer || reason != "slow consumer" {
		t.Errorf("CloseCode = %d %q", code, reason)
	}
	// The client echoes the code, as RFC 6455 asks.
	if h, b := p.frame(); h.OpCode != ws.OpClose || len(b) < 2 || int(b[0])<<8|int(b[1]) != client.CloseSlowConsumer {
		t.Errorf("echo = %v %v", h.OpCode, b)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("events channel still open")
	}
	if err := c.Publish(ctxT(t), "r", "x", nil); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Publish after close = %v", err)
	}
}

func TestCloseHandshake(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	done := async(func() (struct{}, error) { return struct{}{}, c.Close() })
	h, b := p.frame()
	if h.OpCode != ws.OpClose || int(b[0])<<8|int(b[1]) != client.CloseNormal {
		t.Fatalf("got %v %v, want close 1000", h.OpCode, b)
	}
	p.closeWith(client.CloseNormal, "")
	if _, err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.CloseCode(); code != client.CloseNormal {
		t.Errorf("CloseCode = %d", code)
	}
}

func TestSocketDeathIs1006(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	p.conn.Close()
	<-c.Done()
	if code, _ := c.CloseCode(); code != client.CloseAbnormal {
		t.Errorf("CloseCode = %d, want 1006", code)
	}
}

func TestHandshakeRefused(t *testing.T) {
	body := `{"error":"key_invalid","message":"key is unknown, expired or used"}`
	n := newFakeNode(t, func(n *fakeNode) {
		n.refuse = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	})
	_, err := client.Dial(ctxT(t), n.url+"/_/connect/secretkey", nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("Dial = %v, want *HandshakeError", err)
	}
	if he.Status != 401 || string(he.Body) != body || http.Header(he.Header).Get("Content-Type") != "application/json" {
		t.Errorf("HandshakeError = %d %v %q", he.Status, he.Header, he.Body)
	}
	if strings.Contains(err.Error(), "secretkey") {
		t.Errorf("error leaks the key: %v", err)
	}
}

func TestClosedBeforeWelcome(t *testing.T) {
	n := newFakeNode(t, nil)
	ch := async(func() (*client.Client, error) { return client.Dial(ctxT(t), n.url+"/_/connect/k", nil) })
	p := n.accept()
	p.closeWith(client.CloseKeyInvalid, "key used")
	_, err := wait(t, ch)
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != client.CloseKeyInvalid {
		t.Fatalf("Dial = %v, want close 4001", err)
	}
}

func TestWelcomeTimeout(t *testing.T) {
	n := newFakeNode(t, nil)
	ch := async(func() (*client.Client, error) {
		return client.Dial(context.Background(), n.url, &client.Options{HandshakeTimeout: 200 * time.Millisecond})
	})
	n.accept() // upgrade, but never welcome
	if _, err := wait(t, ch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want deadline exceeded", err)
	}
}

func TestContextCancelAbandonsCall(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Publish(ctx, "r", "x", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v", err)
	}
	m := p.expect("publish")
	p.send(`{"type":"ack","id":` + idOf(m) + `}`) // late: ignored
	ping := async(func() (struct{}, error) { return struct{}{}, c.Ping(ctxT(t)) })
	m = p.expect("ping")
	p.send(`{"type":"pong","id":` + idOf(m) + `}`)
	if _, err := wait(t, ping); err != nil {
		t.Fatal(err)
	}
}

func TestEventsDroppedWhenFull(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, &client.Options{EventBuffer: 2})
	for range 5 {
		p.send(`{"type":"event","room":"r","event":"e","data":1}`)
	}
	// The ping's answer comes after the five events, so they are handled.
	ping := async(func() (struct{}, error) { return struct{}{}, c.Ping(ctxT(t)) })
	m := p.expect("ping")
	p.send(`{"type":"pong","id":` + idOf(m) + `}`)
	if _, err := wait(t, ping); err != nil {
		t.Fatal(err)
	}
	if d := c.Dropped(); d != 3 {
		t.Errorf("Dropped = %d, want 3", d)
	}
}

func TestOnEvent(t *testing.T) {
	n := newFakeNode(t, nil)
	got := make(chan client.Event, 4)
	c, p := dial(t, n, &client.Options{OnEvent: func(ev client.Event) { got <- ev }})
	if c.Events() != nil {
		t.Error("Events() must be nil with OnEvent")
	}
	p.send(`{"type":"event","room":"r","event":"e","data":1}`)
	select {
	case ev := <-got:
		if ev.Event != "e" {
			t.Errorf("event = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnEvent not called")
	}
}

func TestMessageTooLarge(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, &client.Options{MaxMessageSize: 180})
	p.send(`{"type":"event","data":"` + strings.Repeat("x", 200) + `"}`)
	h, b := p.frame()
	if h.OpCode != ws.OpClose || int(b[0])<<8|int(b[1]) != client.CloseTooLarge {
		t.Fatalf("got %v %v, want close 1009", h.OpCode, b)
	}
	<-c.Done()
	if code, _ := c.CloseCode(); code != client.CloseTooLarge {
		t.Errorf("CloseCode = %d", code)
	}
}

func TestProtocolErrors(t *testing.T) {
	for name, send := range map[string]func(*peer){
		"continuation first": func(p *peer) { p.sendFrame(ws.OpContinuation, true, []byte("x")) },
		"reserved opcode":    func(p *peer) { p.sendFrame(ws.OpCode(3), true, nil) },
		"fragmented ping":    func(p *peer) { p.sendFrame(ws.OpPing, false, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			n := newFakeNode(t, nil)
			c, p := dial(t, n, nil)
			send(p)
			<-c.Done()
			if code, _ := c.CloseCode(); code != 1002 {
				t.Errorf("CloseCode = %d, want 1002", code)
			}
		})
	}
}

func TestKeepalivePings(t *testing.T) {
	n := newFakeNode(t, nil)
	ch := async(func() (*client.Client, error) { return client.Dial(ctxT(t), n.url, nil) })
	p := n.accept()
	p.send(`{"type":"welcome","session":"s1","ping_interval":0.05}`)
	c, err := wait(t, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer p.conn.Close()
	if h, _ := p.frame(); h.OpCode != ws.OpPing {
		t.Errorf("got %v, want a keepalive ping", h.OpCode)
	}
}

func TestCompression(t *testing.T) {
	for name, params := range map[string]wsflate.Parameters{
		"no context takeover": wsflate.DefaultParameters,
		"server takeover":     {ClientNoContextTakeover: true},
	} {
		t.Run(name, func(t *testing.T) {
			n := newFakeNode(t, func(n *fakeNode) { n.deflate = &params })
			c, p := dial(t, n, &client.Options{Compression: true})
			if !p.deflate || !c.Compressed() {
				t.Fatal("compression not negotiated")
			}
			// Repeated text makes the compressor refer to earlier
			// messages when it keeps its context.
			for i := range 3 {
				p.send(`{"type":"event","room":"r","event":"e","data":"` + strings.Repeat("abc", 50) + `"}`)
				ev := nextEvent(t, c)
				if string(ev.Data) != `"`+strings.Repeat("abc", 50)+`"` {
					t.Fatalf("message %d: data %q", i, ev.Data)
				}
			}
			pub := async(func() (struct{}, error) { return struct{}{}, c.Publish(ctxT(t), "r", "e", strings.Repeat("xyz", 40)) })
			m := p.expect("publish") // p.frame inflates and checks RSV1 was negotiated
			if m["data"] != strings.Repeat("xyz", 40) {
				t.Errorf("publish = %v", m)
			}
			p.send(`{"type":"ack","id":` + idOf(m) + `}`)
			if _, err := wait(t, pub); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCompressionDeclined(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, &client.Options{Compression: true})
	if c.Compressed() {
		t.Error("Compressed() true after the server declined")
	}
	ping := async(func() (struct{}, error) { return struct{}{}, c.Ping(ctxT(t)) })
	h, _ := p.frame()
	if h.Rsv1() {
		t.Fatal("compressed frame without negotiation")
	}
	p.send(`{"type":"pong"}`)
	if _, err := wait(t, ping); err != nil {
		t.Fatal(err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://h/_/connect/abc":           "ws://h/_/connect/REDACTED",
		"ws://h/_/connect?key=abc&x=1":   "ws://h/_/connect?key=REDACTED&x=1",
		"ws://h/chat":                    "ws://h/chat",
		"wss://h:8443/_/connect?key=abc": "wss://h:8443/_/connect?key=REDACTED",
	} {
		if got := client.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBlockingEventsDoNotBlockClose(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, &client.Options{EventBuffer: 1, BlockOnFullEvents: true})
	for range 5 {
		p.send(`{"type":"event","room":"r","event":"e","data":1}`)
	}
	// Nobody reads Events: the reader is stuck on the second event until
	// Close lets it go.
	done := async(func() (struct{}, error) { return struct{}{}, c.Close() })
	if h, _ := p.frame(); h.OpCode != ws.OpClose {
		t.Fatalf("got %v, want close", h.OpCode)
	}
	p.closeWith(client.CloseNormal, "")
	if _, err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if c.Dropped() == 0 {
		t.Error("events left behind by Close were not counted as dropped")
	}
}
