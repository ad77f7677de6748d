package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// request sends a control request and decodes the first answer; ok is
// false when none came within d.
func request(t *testing.T, nc *nats.Conn, subject, body string, d time.Duration) (controlAnswer, bool) {
	t.Helper()
	m, err := nc.Request(subject, []byte(body), d)
	if errors.Is(err, nats.ErrTimeout) {
		return controlAnswer{}, false
	}
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var a controlAnswer
	if err := json.Unmarshal(m.Data, &a); err != nil {
		t.Fatalf("%s answered %q: %v", subject, m.Data, err)
	}
	return a, true
}

func TestControl(t *testing.T) {
	n, base, _ := startNode(t, nil)
	nc := n.bus.NC
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, mint(t, base, `{"user":"ada","session":"s1"}`), &client.Options{EventBuffer: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	a, ok := request(t, nc, "rc.control.join", `{"session":"s1","room":"vip","meta":{"seat":1}}`, 5*time.Second)
	if !ok || !a.OK || a.Affected != 1 {
		t.Fatalf("join: %+v %v", a, ok)
	}
	waitFor := func(what string, match func(client.Event) bool) client.Event {
		t.Helper()
		for {
			select {
			case ev := <-c.Events():
				if match(ev) {
					return ev
				}
			case <-ctx.Done():
				t.Fatalf("no %s", what)
			}
		}
	}
	waitFor("session:list of vip", func(ev client.Event) bool { return ev.Type == client.TypeSessionList && ev.Room == "vip" })
	if err := c.Publish(ctx, "vip", "hi", 1); err != nil {
		t.Fatalf("publish to a room the back-end joined us to: %v", err)
	}
	if _, ok := request(t, nc, "rc.control.join", `{"session":"elsewhere","room":"vip"}`, 300*time.Millisecond); ok {
		t.Fatal("a node answered a join for a session it does not hold")
	}
	a, ok = request(t, nc, "rc.control.join", `{"session":"s1","room":"bad room"}`, 5*time.Second)
	if !ok || a.OK || a.Error == nil || a.Error.Code != "bad_request" {
		t.Fatalf("join of an invalid room: %+v", a)
	}
	a, ok = request(t, nc, "rc.control.leave", `{"session":"s1","room":"vip"}`, 5*time.Second)
	if !ok || !a.OK || a.Affected != 1 {
		t.Fatalf("leave: %+v %v", a, ok)
	}
	ev := waitFor("self session:disconnected", func(ev client.Event) bool { return ev.Type == client.TypeSessionDisconnected })
	if ev.Session != "s1" || ev.Room != "vip" {
		t.Fatalf("leave notice: %s", ev.Raw)
	}
	a, ok = request(t, nc, "rc.control.kick", `not json`, 5*time.Second)
	if !ok || a.Error == nil || a.Error.Code != "bad_request" || !strings.Contains(a.Error.Message, "rc.control.kick") {
		t.Fatalf("bad kick: %+v", a)
	}
	a, ok = request(t, nc, "rc.control.kick", `{"user":"ada","code":4000,"reason":"bye"}`, 5*time.Second)
	if !ok || !a.OK || a.Affected != 1 {
		t.Fatalf("kick: %+v %v", a, ok)
	}
	<-c.Done()
	if code, reason := c.CloseCode(); code != 4000 || reason != "bye" {
		t.Fatalf("kicked with %d %q", code, reason)
	}
	if _, ok := request(t, nc, "rc.control.kick", `{"user":"ada"}`, 300*time.Millisecond); ok {
		t.Fatal("a kick that closed nothing was answered")
	}
}

func TestControlDrain(t *testing.T) {
	for _, exit := range []bool{false, true} {
		name := "stay"
		if exit {
			name = "exit"
		}
		t.Run(name, func(t *testing.T) {
			n, base, _ := startNode(t, func(o *Options) {
				o.ExitOnDrain = exit
				o.DrainWindow = 100 * time.Millisecond
				o.Routes = []Route{{Path: "/chat", Auth: "public"}}
			})
			nc := n.bus.NC
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/chat", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := request(t, nc, "rc.control.drain", `{"node":"other"}`, 300*time.Millisecond); ok {
				t.Fatal("a drain for another node was answered")
			}
			a, ok := request(t, nc, "rc.control.drain", `{"node":"test"}`, 5*time.Second)
			if !ok || !a.OK || a.Affected != 1 {
				t.Fatalf("drain: %+v %v", a, ok)
			}
			<-c.Done()
			if code, _ := c.CloseCode(); code != 1001 {
				t.Fatalf("closed with %d, want 1001", code)
			}
			if exit {
				bustest.Eventually(t, 10*time.Second, func() bool { return nc.IsClosed() }, "node still running after the drain")
				return
			}
			resp, err := http.Get(base + "/readyz")
			if err != nil || resp.StatusCode != 503 {
				t.Fatalf("readyz after drain: %v %v", resp.StatusCode, err)
			}
			resp.Body.Close()
			resp, err = http.Get(base + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthz after drain: %v %v", resp.StatusCode, err)
			}
			resp.Body.Close()
			var he *client.HandshakeError
			if _, err := client.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/chat", nil); !errors.As(err, &he) || he.Status != 503 {
				t.Fatalf("upgrade after drain: %v", err)
			}
		})
	}
}

func TestHookHeaders(t *testing.T) {
	n, base, _ := startNode(t, func(o *Options) {
		o.Routes = []Route{{Path: "/app", Auth: "hook", Headers: []string{"x-tenant"}}, {Path: "/std", Auth: "hook"}}
	})
	got := make(chan hookRequest, 2)
	sub, err := n.bus.NC.Subscribe("rc.auth.connect", func(m *nats.Msg) {
		var req hookRequest
		_ = json.Unmarshal(m.Data, &req)
		got <- req
		_ = m.Respond([]byte(`{"allow":true}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer t"}, "X-Tenant": {"acme"}, "Cookie": {"sid=1"}}
	for path, want := range map[string]map[string]string{
		"/app": {"X-Tenant": "acme"},
		"/std": {"Authorization": "Bearer t"},
	} {
		c, err := client.Dial(ctx, strings.Replace(base, "http", "ws", 1)+path, &client.Options{Header: h})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		req := <-got
		if len(req.Headers) != len(want) || req.Cookies != "sid=1" || req.Remote == "" || req.Path != path {
			t.Fatalf("%s: hook got %+v; want headers %v", path, req, want)
		}
		for k, v := range want {
			if req.Headers[k] != v {
				t.Fatalf("%s: header %s = %q, want %q", path, k, req.Headers[k], v)
			}
		}
	}
	if err := (&Options{NodeID: "x", Routes: []Route{{Path: "/a", Auth: "hook", Headers: []string{"bad header"}}}}).validate(); err == nil ||
		!strings.Contains(err.Error(), "not a header name") {
		t.Fatalf("bad header name: %v", err)
	}
}
