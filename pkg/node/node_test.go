package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// startNode runs a node with embedded NATS (in-process only) on a random
// port and returns it with its base URL. The node drains at cleanup.
func startNode(t *testing.T, edit func(*Options)) (*Node, string, context.CancelFunc) {
	t.Helper()
	o := Defaults()
	o.Listen = "127.0.0.1:0"
	o.NATSListen = "none"
	o.NodeID = "test"
	o.DataDir = t.TempDir()
	o.APIKey = "secret"
	o.DrainWindow = 200 * time.Millisecond
	o.DrainGrace = 5 * time.Second
	if edit != nil {
		edit(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	bustest.Eventually(t, 20*time.Second, func() bool { return n.Addr() != nil }, "node did not start")
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("node did not stop")
		}
	})
	return n, "http://" + n.Addr().String(), cancel
}

func post(t *testing.T, url, key, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func mint(t *testing.T, base string, claims string) string {
	t.Helper()
	code, m, _ := post(t, base+"/_/keys", "secret", claims)
	if code != 200 {
		t.Fatalf("mint: %d %v", code, m)
	}
	return strings.Replace(base, "http", "ws", 1) + m["url"].(string)
}

func TestHTTPEndpoints(t *testing.T) {
	_, base, _ := startNode(t, func(o *Options) { o.Demo = true })
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	if code, _, _ := post(t, base+"/_/keys", "wrong", `{}`); code != 401 {
		t.Fatalf("/_/keys with a wrong key: %d", code)
	}
	if code, _, _ := post(t, base+"/_/publish", "", `{"room":"a"}`); code != 401 {
		t.Fatalf("/_/publish without a key: %d", code)
	}
	if code, m, _ := post(t, base+"/_/publish", "secret", `{"room":"a b"}`); code != 400 {
		t.Fatalf("/_/publish bad room: %d %v", code, m)
	}
	if code, m, _ := post(t, base+"/_/publish", "secret", `not json`); code != 400 {
		t.Fatalf("/_/publish bad JSON: %d %v", code, m)
	}
}

func TestKeyFlowAndPublish(t *testing.T) {
	_, base, _ := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := mint(t, base, `{"user":"ada","rooms":["lobby"]}`)
	c, err := client.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if w := c.Welcome(); w.User != "ada" || len(w.Rooms) != 1 {
		t.Fatalf("welcome %+v", w)
	}
	// A reused key is refused with 401 and a JSON body.
	_, err = client.Dial(ctx, url, nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 || !json.Valid(he.Body) {
		t.Fatalf("reuse: %v", err)
	}
	// A room outside the key's allow list is forbidden.
	if _, err := c.Join(ctx, "secret-room", nil); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("join outside allow: %v", err)
	}
	if code, m, _ := post(t, base+"/_/publish", "secret", `{"room":"lobby","event":"news","data":{"n":1}}`); code != 200 {
		t.Fatalf("publish: %d %v", code, m)
	}
	for ev := range c.Events() {
		if ev.Type == "event" && ev.Event == "news" {
			if string(ev.Data) != `{"n":1}` {
				t.Fatalf("data %s", ev.Data)
			}
			return
		}
	}
}

func TestOrigins(t *testing.T) {
	_, base, _ := startNode(t, func(o *Options) {
		o.Origins = []string{"https://app.example.com", "https://*.preview.example.com"}
		o.Routes = []Route{{Path: "/chat", Auth: "public", Rooms: []string{"lobby"}}}
	})
	ws := strings.Replace(base, "http", "ws", 1) + "/chat"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for origin, ok := range map[string]bool{
		"":                                 true,
		"https://app.example.com":          true,
		"https://pr-1.preview.example.com": true,
		"https://evil.example.com":         false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := client.Dial(ctx, ws, &client.Options{Header: h})
		var he *client.HandshakeError
		switch {
		case ok && err != nil:
			t.Errorf("origin %q refused: %v", origin, err)
		case !ok && (!errors.As(err, &he) || he.Status != 403):
			t.Errorf("origin %q: want 403, got %v", origin, err)
		}
		if c != nil {
			c.Close()
		}
	}
}

func TestHookAuth(t *testing.T) {
	n, base, _ := startNode(t, func(o *Options) {
		o.Routes = []Route{{Path: "/app", Auth: "hook", Rooms: []string{"lobby"}}}
	})
	ws := strings.Replace(base, "http", "ws", 1) + "/app"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// No responder: 503 before the upgrade.
	_, err := client.Dial(ctx, ws, nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("no hook: %v", err)
	}
	sub, err := n.bus.NC.Subscribe("rc.auth.connect", func(m *nats.Msg) {
		var req hookRequest
		_ = json.Unmarshal(m.Data, &req)
		switch req.Headers["Authorization"] {
		case "Bearer good":
			_ = m.Respond([]byte(`{"allow":true,"user":"u1","meta":{"role":"admin"},"allow_rooms":["team.*"]}`))
		case "Bearer garbage":
			_ = m.Respond([]byte(`nope`))
		default:
			_ = m.Respond([]byte(`{"deny":true,"code":401,"reason":"sign in first"}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	c, err := client.Dial(ctx, ws, &client.Options{Header: http.Header{"Authorization": {"Bearer good"}}})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Welcome(); w.User != "u1" || len(w.Rooms) != 1 || w.Rooms[0] != "lobby" {
		t.Fatalf("welcome %+v", w)
	}
	if _, err := c.Join(ctx, "team.red", nil); err != nil {
		t.Fatalf("join allowed by the hook: %v", err)
	}
	c.Close()

	_, err = client.Dial(ctx, ws, &client.Options{Header: http.Header{"Authorization": {"Bearer bad"}}})
	if !errors.As(err, &he) || he.Status != 401 || !strings.Contains(string(he.Body), "sign in first") {
		t.Fatalf("deny: %v", err)
	}
	_, err = client.Dial(ctx, ws, &client.Options{Header: http.Header{"Authorization": {"Bearer garbage"}}})
	if !errors.As(err, &he) || he.Status != 503 {
		t.Fatalf("garbage answer: %v", err)
	}
}

func TestDrain(t *testing.T) {
	n, base, cancelNode := startNode(t, func(o *Options) {
		o.Routes = []Route{{Path: "/chat", Auth: "public", Rooms: []string{"lobby"}}}
		o.DrainWindow = 500 * time.Millisecond
	})
	ws := strings.Replace(base, "http", "ws", 1) + "/chat"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var clients []*client.Client
	for i := 0; i < 20; i++ {
		c, err := client.Dial(ctx, ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	start := time.Now()
	cancelNode()
	bustest.Eventually(t, 5*time.Second, func() bool { return n.draining.Load() }, "not draining")
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("client %d not closed", i)
		}
		if code, _ := c.CloseCode(); code != 1001 {
			t.Fatalf("client %d closed with %d, want 1001", i, code)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("drain took %v", d)
	}
}

func TestConnectionLimits(t *testing.T) {
	_, base, _ := startNode(t, func(o *Options) {
		o.MaxConnsPerIP = 2
		o.APIRate = 5
		o.Routes = []Route{{Path: "/chat", Auth: "public"}}
	})
	ws := strings.Replace(base, "http", "ws", 1) + "/chat"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := client.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Dial(ctx, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Dial(ctx, ws, nil)
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != 429 || he.Header["Retry-After"] == nil {
		t.Fatalf("third connection from one IP: %v; want 429 with Retry-After", err)
	}
	a.Close()
	// The slot frees once the close is done.
	bustest.Eventually(t, 5*time.Second, func() bool {
		c, err := client.Dial(ctx, ws, nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "slot not freed after close")
	b.Close()

	// The API: 5/s with a burst of 11, then 429.
	limited := false
	for i := 0; i < 40 && !limited; i++ {
		code, _, _ := post(t, base+"/_/publish", "wrong", `{}`)
		limited = code == 429
	}
	if !limited {
		t.Fatal("API never rate-limited")
	}
}
