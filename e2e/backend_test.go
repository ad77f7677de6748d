package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/backend"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// backendRoutes are the continuous routes of the back-end tests' nodes.
const backendRoutes = `
routes:
  - path: /hooked
    auth: hook
    headers: [X-Tenant]
  - path: /open
    auth: public
    allow: ["open.>"]
`

// TestBackend drives every back-end subject of issue 4 across two node
// processes on one NATS, with a Go back-end (pkg/backend) in this process:
// per-request sockets, rc.send, rc.events.*, rpc (ok, down, slow, garbage),
// the auth hook, control and database sync.
func TestBackend(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "be-a", NATS: ns.ClientURL(), Config: backendRoutes, Args: []string{"--rpc-timeout", "500ms"}},
		harness.NodeConfig{ID: "be-b", NATS: ns.ClientURL(), Config: backendRoutes, Args: []string{"--rpc-timeout", "500ms"}},
	)
	a, b := nodes[0], nodes[1]
	nc := bustest.Connect(t, ns)
	be, err := backend.New(nc, backend.Options{PublicURL: strings.Replace(b.WS, "ws:", "http:", 1), ExpiryGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	ctx := harness.Ctx(t, 3*time.Minute)

	t.Run("PerRequestSocketOnTheOtherNode", func(t *testing.T) {
		opened := make(chan backend.ConnectEvent, 1)
		got := make(chan backend.Message, 4)
		closed := make(chan int, 1)
		url, err := be.Use(ctx, backend.Claims{User: "ada"}, func(s *backend.Socket) {
			_ = s.Send("Connected!")
			s.OnOpen(func(ev backend.ConnectEvent) { opened <- ev })
			s.OnMessage(func(m backend.Message) {
				got <- m
				_ = s.Emit("echo", m.Data)
			})
			s.OnClose(func(code int, _ string) { closed <- code })
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(url, b.WS+"/_/connect/") {
			t.Fatalf("url %s: want node b's", url)
		}
		c := dialURL(t, url)
		if ev := harness.WaitEvent(t, c, wait, "Connected!", harness.IsEvent("", "message")); string(ev.Data) != `"Connected!"` {
			t.Fatalf("first message %s", ev.Raw)
		}
		select {
		case ev := <-opened:
			if ev.Node != "be-b" || ev.Session != c.Welcome().Session {
				t.Fatalf("connect %+v", ev)
			}
		case <-time.After(wait):
			t.Fatal("no OnOpen")
		}
		if err := c.Send(ctx, "typing", map[string]bool{"on": true}); err != nil {
			t.Fatal(err)
		}
		if m := <-got; m.Event != "typing" || m.User != "ada" || string(m.Data) != `{"on":true}` {
			t.Fatalf("message %+v", m)
		}
		harness.WaitEvent(t, c, wait, "echo", harness.IsEvent("", "echo"))
		c.Close()
		select {
		case code := <-closed:
			if code != 1000 {
				t.Fatalf("OnClose(%d)", code)
			}
		case <-time.After(wait):
			t.Fatal("no OnClose")
		}
	})

	t.Run("UnredeemedKeyCloses4001", func(t *testing.T) {
		closed := make(chan int, 1)
		if _, err := be.Use(ctx, backend.Claims{TTL: time.Second}, func(s *backend.Socket) {
			s.OnClose(func(code int, _ string) { closed <- code })
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-closed:
			if code != backend.CloseKeyExpired {
				t.Fatalf("OnClose(%d), want 4001", code)
			}
		case <-time.After(wait):
			t.Fatal("no OnClose for the unredeemed key")
		}
	})

	t.Run("LifecycleEvents", func(t *testing.T) {
		sub, err := nc.SubscribeSync("rc.events.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		_ = nc.Flush()
		c := a.Dial(t, "/open")
		id := c.Welcome().Session
		if _, err := c.Join(ctx, "open.x", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Join(ctx, "closed.x", nil); err == nil {
			t.Fatal("join outside the route's allow patterns accepted")
		}
		if err := c.Leave(ctx, "open.x"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		want := []struct {
			typ    string
			fields string
		}{
			{"connect", "at,meta,node,remote,route,session,type,user"},
			{"join", "at,node,room,session,type,user"},
			{"error", "at,code,message,node,session,type,user"},
			{"leave", "at,node,room,session,type,user"},
			{"close", "at,code,node,reason,session,type,user"},
		}
		for _, w := range want {
			ev := nextLifecycle(t, sub, id)
			keys := make([]string, 0, len(ev))
			for k := range ev {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if ev["type"] != w.typ || strings.Join(keys, ",") != w.fields || ev["node"] != "be-a" {
				t.Fatalf("event %v; want type %s with fields %s from be-a", ev, w.typ, w.fields)
			}
			switch w.typ {
			case "connect":
				if ev["route"] != "/open" || !strings.HasPrefix(ev["remote"].(string), "127.0.0.1:") {
					t.Errorf("connect %v", ev)
				}
			case "error":
				if ev["code"] != "forbidden" {
					t.Errorf("error %v", ev)
				}
			case "close":
				if ev["code"] != 1000.0 {
					t.Errorf("close %v", ev)
				}
			}
		}
	})

	t.Run("RPC", func(t *testing.T) {
		ok, err := be.Serve("e2e.ok", func(_ context.Context, r *backend.Request) (any, error) {
			return map[string]any{"user": r.User, "echo": r.Data}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ok.Stop()
		raw := map[string]func(m *nats.Msg){
			"e2e.slow":   func(m *nats.Msg) { time.Sleep(2 * time.Second); _ = m.Respond([]byte(`"late"`)) },
			"e2e.binary": func(m *nats.Msg) { _ = m.Respond([]byte{0xff, 0x00, 0xfe}) },
			"e2e.text":   func(m *nats.Msg) { _ = m.Respond([]byte("plain text")) },
			"e2e.huge":   func(m *nats.Msg) { _ = m.Respond(make([]byte, 600<<10)) },
			"e2e.refused": func(m *nats.Msg) {
				r := nats.NewMsg(m.Reply)
				r.Header.Set("Rc-Error", "forbidden")
				r.Data = []byte("no")
				_ = m.RespondMsg(r)
			},
		}
		for method, h := range raw {
			h := h
			sub, err := nc.Subscribe("rc.rpc."+method, func(m *nats.Msg) { go h(m) })
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
		}
		_ = nc.Flush()
		c := a.Connect(t, harness.Claims{User: "rpc-user"})
		r, err := c.RPC(ctx, "e2e.ok", []int{1})
		if err != nil || string(r) != `{"echo":[1],"user":"rpc-user"}` {
			t.Fatalf("ok: %s %v", r, err)
		}
		for method, want := range map[string]string{"e2e.down": "not_found", "e2e.slow": "timeout", "e2e.huge": "too_large", "e2e.refused": "forbidden"} {
			start := time.Now()
			_, err := c.RPC(ctx, method, nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Code != want {
				t.Errorf("%s: %v; want error %s", method, err, want)
			}
			if method == "e2e.slow" && time.Since(start) > 1500*time.Millisecond {
				t.Errorf("slow back-end: error after %v; --rpc-timeout is 500ms", time.Since(start))
			}
		}
		for method, want := range map[string]string{"e2e.binary": "\ufffd\x00\ufffd", "e2e.text": "plain text"} {
			r, err := c.RPC(ctx, method, nil)
			var got string
			if err != nil || json.Unmarshal(r, &got) != nil || got != want {
				t.Errorf("%s: %s %v; want the string %q", method, r, err, want)
			}
		}
		// The node survived and said what happened.
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping after garbage: %v", err)
		}
		harness.Eventually(t, wait, func() bool {
			return strings.Contains(a.Log(), "rpc answer too large") && strings.Contains(a.Log(), "rpc answer is not UTF-8")
		}, "node a logged nothing about the garbage answers")
	})

	t.Run("AuthHook", func(t *testing.T) {
		var seen sync.Map
		guard, err := be.ServeAuth("/hooked", func(_ context.Context, r *backend.AuthRequest) backend.AuthAnswer {
			seen.Store("headers", r.Headers)
			switch r.Headers["X-Tenant"] {
			case "acme":
				return backend.AuthAnswer{Allow: true, User: "acme-user", Rooms: []string{"acme.lobby"}}
			case "slow":
				time.Sleep(4 * time.Second) // past the node's 3 s hook deadline
			}
			return backend.Deny(403, "unknown tenant")
		})
		if err != nil {
			t.Fatal(err)
		}
		hdr := func(tenant string) *client.Options {
			return &client.Options{Header: http.Header{"X-Tenant": {tenant}, "Authorization": {"Bearer secret"}}}
		}
		c := b.DialWith(t, "/hooked", hdr("acme"))
		if w := c.Welcome(); w.User != "acme-user" || len(w.Rooms) != 1 {
			t.Fatalf("welcome %s", w.Raw)
		}
		h, _ := seen.Load("headers")
		if hm := h.(map[string]string); len(hm) != 1 || hm["X-Tenant"] != "acme" {
			t.Fatalf("the hook got headers %v; want only the route's X-Tenant", hm)
		}
		for tenant, status := range map[string]int{"evil": 403, "slow": 503} {
			_, err := client.Dial(ctx, b.URL("/hooked"), hdr(tenant))
			var he *client.HandshakeError
			if !errors.As(err, &he) || he.Status != status {
				t.Errorf("tenant %s: %v; want HTTP %d", tenant, err, status)
			}
		}
		_ = guard.Stop()
		_, err = client.Dial(ctx, a.URL("/hooked"), hdr("acme"))
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.Status != 503 || he.Header["Retry-After"] == nil {
			t.Errorf("hook down: %v; want 503 with Retry-After", err)
		}
	})

	t.Run("ControlAcrossNodes", func(t *testing.T) {
		z1 := a.Connect(t, harness.Claims{User: "zed", Rooms: []string{"doc.1"}})
		z2 := b.Connect(t, harness.Claims{User: "zed", Rooms: []string{"doc.1"}})
		o1 := a.Connect(t, harness.Claims{User: "olga", Rooms: []string{"doc.1"}})
		o2 := b.Connect(t, harness.Claims{User: "otto", Rooms: []string{"doc.1"}})
		for _, c := range []*client.Client{z1, z2, o1, o2} {
			harness.WaitJoined(t, c, "doc.1")
		}
		// Join and leave a session held by node b, from the back-end.
		if err := be.Join(ctx, o2.Welcome().Session, "vip", nil); err != nil {
			t.Fatalf("join: %v", err)
		}
		harness.WaitJoined(t, o2, "vip")
		if err := o2.Publish(ctx, "vip", "hello", 1); err != nil {
			t.Fatalf("publish to the granted room: %v", err)
		}
		if err := be.Leave(ctx, o2.Welcome().Session, "vip"); err != nil {
			t.Fatalf("leave: %v", err)
		}
		harness.WaitEvent(t, o2, wait, "leave notice", func(ev client.Event) bool {
			return ev.Type == client.TypeSessionDisconnected && ev.Room == "vip" && ev.Session == o2.Welcome().Session
		})
		// Database sync reaches members on both nodes.
		if err := backend.PublishEntity(nc, "doc.1", backend.EntityCreated, "notes", "n1", map[string]string{"text": "hi"}, 1); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{z1, z2, o1, o2} {
			ev := harness.WaitEvent(t, c, wait, "entity:created", harness.IsEvent("doc.1", "entity:created"))
			if string(ev.Data) != `{"collection":"notes","id":"n1","data":{"text":"hi"},"version":1}` {
				t.Fatalf("entity event %s", ev.Data)
			}
		}
		// Kick a user: one session on each node.
		n, err := be.Kick(ctx, backend.Kick{User: "zed", Code: 4000, Reason: "banned"})
		if err != nil || n != 2 {
			t.Fatalf("kick zed: %d %v", n, err)
		}
		for _, c := range []*client.Client{z1, z2} {
			<-c.Done()
			if code, reason := c.CloseCode(); code != 4000 || reason != "banned" {
				t.Fatalf("kicked with %d %q", code, reason)
			}
		}
		// Close the room: the members left on both nodes are told.
		n, err = be.CloseRoom(ctx, backend.CloseRoom{Room: "doc.1", Reason: "archived"})
		if err != nil || n != 2 {
			t.Fatalf("close-room: %d %v", n, err)
		}
		for _, c := range []*client.Client{o1, o2} {
			ev := harness.WaitEvent(t, c, wait, "room closed", func(ev client.Event) bool { return ev.Type == client.TypeError })
			if ev.Code != "forbidden" || ev.Room != "doc.1" || !strings.Contains(ev.Message, "archived") {
				t.Fatalf("close-room notice %s", ev.Raw)
			}
		}
		if err := o1.Ping(ctx); err != nil {
			t.Fatalf("a member of a closed room lost its connection: %v", err)
		}
	})

	t.Run("Drain", func(t *testing.T) {
		c := b.Connect(t, harness.Claims{User: "d"})
		n, err := be.Drain(ctx, "be-b")
		if err != nil || n < 1 {
			t.Fatalf("drain: %d %v", n, err)
		}
		<-c.Done()
		if code, _ := c.CloseCode(); code != 1001 {
			t.Fatalf("closed with %d, want 1001", code)
		}
		harness.Eventually(t, wait, func() bool {
			code, _, _ := b.Get("/readyz")
			return code == 503
		}, "node b still ready after its drain")
		if code, _, err := b.Get("/healthz"); code != 200 || err != nil || !b.Alive() {
			t.Fatalf("node b after a drain without --exit-on-drain: %d %v alive %v", code, err, b.Alive())
		}
		// Node a still works.
		k := a.MintKey(t, harness.Claims{})
		a.Dial(t, k.URL)
	})
}

// TestDrainExit: with --exit-on-drain a node drained over rc.control.drain
// exits with status 0 once its connections are gone.
func TestDrainExit(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	n := harness.StartNode(t, harness.NodeConfig{ID: "be-exit", NATS: ns.ClientURL(), Args: []string{"--exit-on-drain", "--drain-window", "200ms"}})
	c := n.Connect(t, harness.Claims{User: "x"})
	nc := bustest.Connect(t, ns)
	m, err := nc.Request("rc.control.drain", []byte(`{"node":"be-exit"}`), wait)
	if err != nil || string(m.Data) != `{"ok":true,"affected":1}` {
		t.Fatalf("drain: %v %s", err, m.Data)
	}
	<-c.Done()
	harness.Eventually(t, wait, func() bool { return !n.Alive() }, "node still running after the drain")
	n.Terminate() // already gone: marks it stopped for the harness
	if err := n.WaitExit(wait); err != nil {
		t.Fatalf("exit status: %v", err)
	}
}

func dialURL(t *testing.T, url string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := client.Dial(ctx, url, &client.Options{EventBuffer: 1024})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextLifecycle returns the next event of session id on sub, skipping
// probes and other sessions' events.
func nextLifecycle(t *testing.T, sub *nats.Subscription, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		if m.Header.Get(backend.HeaderProbe) != "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event %q is not JSON: %v", m.Data, err)
		}
		if ev["session"] == id {
			return ev
		}
	}
	t.Fatalf("no further lifecycle event for %s", id)
	return nil
}
