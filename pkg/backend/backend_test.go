package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/backend"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
	"github.com/roomcast/roomcast/pkg/node"
)

const wait = 10 * time.Second

// env is one node in this process on a NATS server of the test's, and a
// back-end connection to that NATS.
type env struct {
	nc   *nats.Conn
	ws   string // ws://host:port
	http string
}

func start(t *testing.T, edit func(*node.Options)) env {
	t.Helper()
	srv := bustest.RunServer(t)
	o := node.Defaults()
	o.Listen, o.NATS, o.NodeID = "127.0.0.1:0", srv.ClientURL(), "n1"
	o.DrainWindow, o.DrainGrace = 100*time.Millisecond, 5*time.Second
	o.Routes = []node.Route{{Path: "/guarded", Auth: "hook"}}
	if edit != nil {
		edit(&o)
	}
	n, err := node.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("node did not stop")
		}
	})
	bustest.Eventually(t, 20*time.Second, func() bool {
		if n.Addr() == nil {
			return false
		}
		resp, err := http.Get("http://" + n.Addr().String() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "node not ready")
	return env{nc: bustest.Connect(t, srv), ws: "ws://" + n.Addr().String(), http: "http://" + n.Addr().String()}
}

func newBackend(t *testing.T, e env, edit func(*backend.Options)) *backend.Backend {
	t.Helper()
	o := backend.Options{PublicURL: strings.Replace(e.ws, "ws:", "http:", 1)}
	if edit != nil {
		edit(&o)
	}
	b, err := backend.New(e.nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func dial(t *testing.T, url string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := client.Dial(ctx, url, &client.Options{EventBuffer: 256})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t *testing.T, c *client.Client, what string, match func(client.Event) bool) client.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("waiting for %s: connection ended: %v", what, c.Err())
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, wait)
		}
	}
}

func isEvent(room, event string) func(client.Event) bool {
	return func(ev client.Event) bool { return ev.Type == client.TypeEvent && ev.Room == room && ev.Event == event }
}

// recorder collects what a socket's callbacks saw.
type recorder struct {
	mu     sync.Mutex
	log    []string
	opened chan backend.ConnectEvent
	closed chan [2]any
	msgs   chan backend.Message
}

func newRecorder() *recorder {
	return &recorder{opened: make(chan backend.ConnectEvent, 1), closed: make(chan [2]any, 1), msgs: make(chan backend.Message, 16)}
}

func (r *recorder) attach(s *backend.Socket) {
	s.OnOpen(func(ev backend.ConnectEvent) { r.add("open"); r.opened <- ev })
	s.OnMessage(func(m backend.Message) { r.add("message"); r.msgs <- m })
	s.OnClose(func(code int, reason string) { r.add("close"); r.closed <- [2]any{code, reason} })
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) waitClose(t *testing.T) (int, string) {
	t.Helper()
	select {
	case c := <-r.closed:
		return c[0].(int), c[1].(string)
	case <-time.After(wait):
		t.Fatal("OnClose not called")
		return 0, ""
	}
}

func TestUse(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, nil)
	rec := newRecorder()
	var sock *backend.Socket
	url, err := b.Use(context.Background(), backend.Claims{User: "ada", Meta: map[string]string{"name": "Ada"}, Rooms: []string{"chat.lobby"}},
		func(s *backend.Socket) {
			sock = s
			rec.attach(s)
			if err := s.Send("Connected!"); err != nil { // queued until the browser connects
				t.Error(err)
			}
			s.OnMessage(func(m backend.Message) { _ = s.Emit("echo", m.Data) })
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, e.ws+"/_/connect/") {
		t.Fatalf("url %q: want %s/_/connect/<key>", url, e.ws)
	}
	if sock.State() != backend.Connecting {
		t.Fatalf("state before connecting: %v", sock.State())
	}
	c := dial(t, url)
	if w := c.Welcome(); w.Session != sock.ID() || w.User != "ada" {
		t.Fatalf("welcome %s; want session %s", w.Raw, sock.ID())
	}
	ev := next(t, c, "Connected!", isEvent("", "message"))
	if string(ev.Data) != `"Connected!"` {
		t.Fatalf("first message %s", ev.Raw)
	}
	select {
	case o := <-rec.opened:
		if o.Node != "n1" || o.Session != sock.ID() || o.Remote == "" || o.Route != "" || string(o.Meta) != `{"name":"Ada"}` {
			t.Fatalf("connect event %+v", o)
		}
	case <-time.After(wait):
		t.Fatal("OnOpen not called")
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Send(ctx, "chat", map[string]string{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	m := <-rec.msgs
	if m.Event != "chat" || m.User != "ada" || string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("message %+v", m)
	}
	if ev := next(t, c, "echo", isEvent("", "echo")); string(ev.Data) != `{"text":"hi"}` {
		t.Fatalf("echo %s", ev.Raw)
	}
	// Socket.Publish speaks as the session.
	if err := sock.Publish("chat.lobby", "said", "hello"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, c, "publish", isEvent("chat.lobby", "said")); ev.From != sock.ID() {
		t.Fatalf("from %q", ev.From)
	}
	sock.Close(4000, "bye")
	<-c.Done()
	if code, reason := c.CloseCode(); code != 4000 || reason != "bye" {
		t.Fatalf("client closed with %d %q", code, reason)
	}
	if code, reason := rec.waitClose(t); code != 4000 || reason != "bye" {
		t.Fatalf("OnClose(%d, %q)", code, reason)
	}
	if sock.State() != backend.Closed || sock.Context().Err() == nil {
		t.Fatalf("after close: %v %v", sock.State(), sock.Context().Err())
	}
	if err := sock.Send("late"); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	rec.mu.Lock()
	if got := strings.Join(rec.log, ","); got != "open,message,close" {
		t.Errorf("callbacks: %s", got)
	}
	rec.mu.Unlock()
}

// A key that is never redeemed closes its socket with 4001 and releases
// its subscription.
func TestUseExpiry(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, func(o *backend.Options) { o.ExpiryGrace = 100 * time.Millisecond })
	mint(t, b, backend.Claims{}) // the first request subscribes nats.go's response inbox
	before := e.nc.NumSubscriptions()
	rec := newRecorder()
	started := time.Now()
	url, err := b.Use(context.Background(), backend.Claims{TTL: time.Second}, rec.attach)
	if err != nil {
		t.Fatal(err)
	}
	if e.nc.NumSubscriptions() != before+1 {
		t.Fatalf("subscriptions: %d, want %d", e.nc.NumSubscriptions(), before+1)
	}
	code, reason := rec.waitClose(t)
	if code != backend.CloseKeyExpired || !strings.Contains(reason, "expired") || time.Since(started) < time.Second {
		t.Fatalf("OnClose(%d, %q) after %v", code, reason, time.Since(started))
	}
	bustest.Eventually(t, wait, func() bool { return e.nc.NumSubscriptions() == before }, "subscription not released")
	// The key is dead too.
	_, err = client.Dial(context.Background(), url, nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("expired key: %v", err)
	}
}

// The browser closes: OnClose gets its code; a socket closed before the
// browser connects is kicked when it does.
func TestUseClientCloseAndEarlyClose(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, nil)
	rec := newRecorder()
	url, err := b.Use(context.Background(), backend.Claims{}, rec.attach)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, url)
	<-rec.opened
	c.Close()
	if code, _ := rec.waitClose(t); code != 1000 {
		t.Fatalf("OnClose code %d after the client closed", code)
	}

	rec2 := newRecorder()
	url, err = b.Use(context.Background(), backend.Claims{}, func(s *backend.Socket) {
		rec2.attach(s)
		s.Close(4000, "changed my mind")
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := rec2.waitClose(t); code != 4000 {
		t.Fatalf("early close: %d", code)
	}
	c2 := dial(t, url)
	<-c2.Done()
	if code, _ := c2.CloseCode(); code != 4000 {
		t.Fatalf("late browser closed with %d, want the early close's 4000", code)
	}
}

func TestUseMintFails(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, func(o *backend.Options) { o.Prefix = "elsewhere" })
	rec := newRecorder()
	var gotErr string
	_, err := b.Use(context.Background(), backend.Claims{}, func(s *backend.Socket) {
		rec.attach(s)
		s.OnError(func(code, _ string) { gotErr = code })
	})
	var be *backend.Error
	if !errors.As(err, &be) || be.Code != "unavailable" || !strings.Contains(be.Message, "is a roomcast node running") {
		t.Fatalf("Use without a node: %v", err)
	}
	if code, _ := rec.waitClose(t); code != 1011 || gotErr != "mint_failed" {
		t.Fatalf("OnClose %d, OnError %q", code, gotErr)
	}
	_, err = b.Use(context.Background(), backend.Claims{Session: "has.dot"}, func(*backend.Socket) {})
	if !errors.As(err, &be) || be.Code != "bad_request" {
		t.Fatalf("bad session: %v", err)
	}
}

func TestServe(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, nil)
	var got *backend.Request
	svc, err := backend.Serve(e.nc, "math.double", func(_ context.Context, r *backend.Request) (any, error) {
		got = r
		var n int
		if err := r.Decode(&n); err != nil {
			return nil, err
		}
		switch n {
		case 13:
			return nil, &backend.Error{Code: "forbidden", Message: "unlucky"}
		case 14:
			return nil, errors.New("database exploded")
		case 15:
			panic("boom")
		}
		return map[string]int{"n": 2 * n}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	c := dial(t, mint(t, b, backend.Claims{User: "ada", Meta: json.RawMessage(`{"a":1}`)}))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := c.RPC(ctx, "math.double", 21)
	if err != nil || string(r) != `{"n":42}` {
		t.Fatalf("rpc: %s %v", r, err)
	}
	if got.Session != c.Welcome().Session || got.User != "ada" || string(got.Meta) != `{"a":1}` || got.Method != "math.double" {
		t.Fatalf("request %+v", got)
	}
	for n, want := range map[int]string{13: "forbidden: unlucky", 14: "unavailable", 15: "unavailable"} {
		_, err := c.RPC(ctx, "math.double", n)
		var ce *client.Error
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Code+": "+ce.Message, want) {
			t.Errorf("rpc %d: %v; want %s", n, err, want)
		}
	}
	_, err = c.RPC(ctx, "math.double", "not a number")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "bad_request" {
		t.Errorf("bad data: %v", err)
	}
}

func mint(t *testing.T, b *backend.Backend, c backend.Claims) string {
	t.Helper()
	m, err := b.Mint(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return m.URL
}

func TestMintURL(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, nil)
	if u := mint(t, b, backend.Claims{}); !strings.HasPrefix(u, e.ws+"/_/connect/") {
		t.Fatalf("url %q", u)
	}
	nb, _ := backend.New(e.nc, backend.Options{})
	defer nb.Close()
	m, err := nb.Mint(context.Background(), backend.Claims{User: "bad user"})
	var be *backend.Error
	if !errors.As(err, &be) || be.Code != "bad_request" {
		t.Fatalf("bad claims: %v %v", m, err)
	}
	if m, err := nb.Mint(context.Background(), backend.Claims{}); err != nil || !strings.HasPrefix(m.URL, "/_/connect/") {
		t.Fatalf("without PublicURL: %+v %v", m, err)
	}
}

func TestServeAuthGuards(t *testing.T) {
	e := start(t, func(o *node.Options) {
		o.Routes = append(o.Routes, node.Route{Path: "/by-ip", Auth: "hook"})
		// The test's clients play a load balancer on loopback and a
		// proxy hop on 10.0.0.1 (X-Forwarded-For below).
		o.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8"}
	})
	// Session guard: a cookie the app knows.
	sessions := map[string]string{"s3cr3t": "ada"}
	g1, err := backend.ServeAuth(e.nc, "/guarded", func(_ context.Context, r *backend.AuthRequest) backend.AuthAnswer {
		user, ok := sessions[r.Cookie("sid")]
		if !ok {
			return backend.Deny(401, "sign in first")
		}
		return backend.AuthAnswer{Allow: true, User: user, Rooms: []string{"team"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g1.Stop()
	// IP guard: loopback only.
	g2, err := backend.ServeAuth(e.nc, "/by-ip", func(_ context.Context, r *backend.AuthRequest) backend.AuthAnswer {
		if ip := r.IP(); !ip.IsLoopback() {
			return backend.Deny(403, "not from "+ip.String())
		}
		return backend.AuthAnswer{Allow: true}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := client.Dial(ctx, e.ws+"/guarded", &client.Options{Header: http.Header{"Cookie": {"sid=s3cr3t"}}})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Welcome(); w.User != "ada" || len(w.Rooms) != 1 {
		t.Fatalf("welcome %s", w.Raw)
	}
	c.Close()
	var he *client.HandshakeError
	if _, err := client.Dial(ctx, e.ws+"/guarded", nil); !errors.As(err, &he) || he.Status != 401 || !strings.Contains(string(he.Body), "sign in first") {
		t.Fatalf("no cookie: %v", err)
	}
	c, err = client.Dial(ctx, e.ws+"/by-ip", nil)
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	c.Close()
	if _, err := client.Dial(ctx, e.ws+"/by-ip", &client.Options{Header: http.Header{"X-Forwarded-For": {"203.0.113.9, 10.0.0.1"}}}); !errors.As(err, &he) || he.Status != 403 ||
		!strings.Contains(string(he.Body), "203.0.113.9") {
		t.Fatalf("forwarded address: %v", err)
	}
}

func TestPublishingAndControl(t *testing.T) {
	e := start(t, nil)
	b := newBackend(t, e, nil)
	rec := newRecorder()
	var sock *backend.Socket
	url, err := b.Use(context.Background(), backend.Claims{User: "ada", Rooms: []string{"todos"}}, func(s *backend.Socket) { sock = s; rec.attach(s) })
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, url)
	next(t, c, "session:list", func(ev client.Event) bool { return ev.Type == client.TypeSessionList })
	<-rec.opened

	if err := backend.PublishEntity(e.nc, "todos", backend.EntityUpdated, "todos", "42", map[string]any{"title": "milk"}, 7); err != nil {
		t.Fatal(err)
	}
	ev := next(t, c, "entity event", isEvent("todos", "entity:updated"))
	if string(ev.Data) != `{"collection":"todos","id":"42","data":{"title":"milk"},"version":7}` {
		t.Fatalf("entity event %s", ev.Data)
	}
	_ = b.PublishEntity("todos", backend.EntityDeleted, "todos", "42", map[string]any{"ignored": true}, 8)
	if ev := next(t, c, "delete", isEvent("todos", "entity:deleted")); string(ev.Data) != `{"collection":"todos","id":"42","version":8}` {
		t.Fatalf("delete event %s", ev.Data)
	}
	if err := backend.PublishEntity(e.nc, "todos", "renamed", "todos", "1", nil, 0); err == nil {
		t.Fatal("unknown kind accepted")
	}
	_ = b.Publish("todos", "note", []int{1})
	_ = b.SendTo(sock.ID(), "dm", "to you")
	_ = b.SendToUser("ada", "dm", "to ada")
	// Three subjects: no order between them.
	seen := map[string]bool{}
	for len(seen) < 3 {
		ev := next(t, c, "publishes", func(ev client.Event) bool { return ev.Type == client.TypeEvent })
		seen[ev.Room+"/"+ev.Event+"/"+string(ev.Data)] = true
	}
	for _, k := range []string{"todos/note/[1]", `/dm/"to you"`, `/dm/"to ada"`} {
		if !seen[k] {
			t.Fatalf("missing %s in %v", k, seen)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := sock.Join(ctx, "secret", map[string]int{"seat": 1}); err != nil {
		t.Fatal(err)
	}
	next(t, c, "list of secret", func(ev client.Event) bool { return ev.Type == client.TypeSessionList && ev.Room == "secret" })
	if err := sock.Leave(ctx, "secret"); err != nil {
		t.Fatal(err)
	}
	var be *backend.Error
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := b.Join(short, "nobody-here", "secret", nil); !errors.As(err, &be) || be.Code != "timeout" {
		t.Fatalf("join of an unknown session: %v", err)
	}
	if n, err := b.CloseRoom(ctx, backend.CloseRoom{Room: "todos", Reason: "done"}); n != 1 || err != nil {
		t.Fatalf("close-room: %d %v", n, err)
	}
	if ev := next(t, c, "room closed", func(ev client.Event) bool { return ev.Type == client.TypeError }); ev.Code != "forbidden" || ev.Room != "todos" {
		t.Fatalf("close-room notice %s", ev.Raw)
	}
	if n, err := b.Kick(ctx, backend.Kick{User: "ada", Code: 4000, Reason: "out"}); n != 1 || err != nil {
		t.Fatalf("kick: %d %v", n, err)
	}
	<-c.Done()
	if code, _ := rec.waitClose(t); code != 4000 {
		t.Fatalf("OnClose after kick: %d", code)
	}
	if _, err := b.Kick(ctx, backend.Kick{}); !errors.As(err, &be) || be.Code != "bad_request" {
		t.Fatalf("empty kick: %v", err)
	}
	if n, err := b.Drain(ctx, "n1"); n != 0 || err != nil {
		t.Fatalf("drain: %d %v", n, err)
	}
}
