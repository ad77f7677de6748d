package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

// wait is the deadline for anything that should take milliseconds; it is
// generous because the machine may be busy.
const wait = 15 * time.Second

// TestEmbeddedNode runs one node with its embedded NATS and walks the wire
// protocol: keys, join, publish, echo, presence, leave, errors, refusals,
// roomcast-mint over NATS and HTTP, and a continuous route.
func TestEmbeddedNode(t *testing.T) {
	t.Parallel()
	node := harness.StartNode(t, harness.NodeConfig{
		ID:         "solo",
		NATSListen: "127.0.0.1:0", // roomcast-mint --nats needs a port
		Config: `
routes:
  - path: /lobby
    auth: public
    rooms: [lobby.main]
    allow: ["lobby.>"]
`,
	})

	t.Run("JoinPublishReceive", func(t *testing.T) {
		ka := node.MintKey(t, harness.Claims{User: "alice", Meta: json.RawMessage(`{"name":"Alice"}`), Allow: []string{"chat.>"}})
		a := node.Dial(t, ka.URL)
		w := a.Welcome()
		if w.Session != ka.Session || w.User != "alice" || w.Node != "solo" || string(w.Meta) != `{"name":"Alice"}` {
			t.Errorf("welcome = %s; want session %q user alice node solo meta {\"name\":\"Alice\"}", w.Raw, ka.Session)
		}
		if w.PingInterval <= 0 {
			t.Errorf("welcome has no ping_interval: %s", w.Raw)
		}
		b := node.Connect(t, harness.Claims{User: "bob", Allow: []string{"chat.>"}})
		ctx := harness.Ctx(t, wait)

		members, err := a.Join(ctx, "chat.lobby", map[string]string{"mood": "ok"})
		if err != nil {
			t.Fatalf("alice join: %v", err)
		}
		if len(members) != 1 || members[0].Session != ka.Session || members[0].User != "alice" || members[0].ConnectedAt == 0 {
			t.Errorf("alice's join list = %+v; want only alice, with connected_at", members)
		}
		members, err = b.Join(ctx, "chat.lobby", nil)
		if err != nil {
			t.Fatalf("bob join: %v", err)
		}
		if len(members) != 2 {
			t.Errorf("bob's join list = %+v; want alice and bob", members)
		}
		ev := harness.WaitEvent(t, a, wait, "session:connected for bob", func(ev client.Event) bool {
			return ev.Type == client.TypeSessionConnected && ev.Room == "chat.lobby"
		})
		if ev.Session != b.Welcome().Session || ev.User != "bob" || ev.Count != 2 {
			t.Errorf("session:connected = %s; want bob's session, count 2", ev.Raw)
		}

		if err := a.Publish(ctx, "chat.lobby", "msg", map[string]string{"text": "hi"}); err != nil {
			t.Fatalf("publish: %v", err)
		}
		for name, c := range map[string]*client.Client{"bob": b, "alice (echo)": a} {
			ev := harness.WaitEvent(t, c, wait, name+" gets msg", harness.IsEvent("chat.lobby", "msg"))
			if ev.From != ka.Session || string(ev.Data) != `{"text":"hi"}` {
				t.Errorf("%s got %s; want from %q data {\"text\":\"hi\"}", name, ev.Raw, ka.Session)
			}
		}

		// echo:false: alice's next msg event must be the echoed one, not
		// the one she sent without echo.
		if err := a.Publish(ctx, "chat.lobby", "msg", "quiet", client.NoEcho()); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, "chat.lobby", "msg", "loud"); err != nil {
			t.Fatal(err)
		}
		if ev := harness.WaitEvent(t, a, wait, "alice's echo", harness.IsEvent("chat.lobby", "msg")); string(ev.Data) != `"loud"` {
			t.Errorf("alice got %s; the echo:false publish must not come back", ev.Raw)
		}
		for _, want := range []string{`"quiet"`, `"loud"`} {
			if ev := harness.WaitEvent(t, b, wait, "bob gets "+want, harness.IsEvent("chat.lobby", "msg")); string(ev.Data) != want {
				t.Errorf("bob got %s, want data %s", ev.Raw, want)
			}
		}

		members, err = a.Presence(ctx, "chat.lobby")
		if err != nil || len(members) != 2 {
			t.Errorf("presence = %+v, %v; want 2 members", members, err)
		}
		if err := a.Ping(ctx); err != nil {
			t.Errorf("ping: %v", err)
		}
		if err := b.Leave(ctx, "chat.lobby"); err != nil {
			t.Fatalf("leave: %v", err)
		}
		ev = harness.WaitEvent(t, a, wait, "session:disconnected for bob", func(ev client.Event) bool {
			return ev.Type == client.TypeSessionDisconnected && ev.Room == "chat.lobby"
		})
		if ev.Session != b.Welcome().Session || ev.Count != 1 {
			t.Errorf("session:disconnected = %s; want bob's session, count 1", ev.Raw)
		}
	})

	t.Run("ReusedKeyRefused", func(t *testing.T) {
		k := node.MintKey(t, harness.Claims{User: "carol"})
		c := node.Dial(t, k.URL)
		c.Close()
		_, err := client.Dial(harness.Ctx(t, wait), node.URL(k.URL), nil)
		assertRefused(t, err, "reused key")
		_, err = client.Dial(harness.Ctx(t, wait), node.URL("/_/connect/AAAAnotAkeyAAAA"), nil)
		assertRefused(t, err, "unknown key")
		// The ?key= form is the same key space.
		k = node.MintKey(t, harness.Claims{User: "carol"})
		node.Dial(t, "/_/connect?key="+k.Key)
		_, err = client.Dial(harness.Ctx(t, wait), node.URL("/_/connect?key="+k.Key), nil)
		assertRefused(t, err, "reused ?key=")
	})

	t.Run("BadRoomName", func(t *testing.T) {
		c := node.Connect(t, harness.Claims{User: "dave", Allow: []string{">"}})
		ctx := harness.Ctx(t, wait)
		for _, room := range []string{"bad room", "a..b", "", strings.Repeat("x", 129), "chat.*", "chat.>"} {
			_, err := c.Join(ctx, room, nil)
			assertCode(t, err, client.CodeBadRequest, "join "+quote(room))
		}
		err := c.Publish(ctx, "bad room", "msg", 1)
		assertCode(t, err, client.CodeBadRequest, "publish to \"bad room\"")
		// The session survives its mistakes.
		if _, err := c.Join(ctx, "good.room", nil); err != nil {
			t.Errorf("join after errors: %v", err)
		}
	})

	t.Run("NotAllowed", func(t *testing.T) {
		c := node.Connect(t, harness.Claims{User: "erin", Allow: []string{"team.a.>"}})
		ctx := harness.Ctx(t, wait)
		_, err := c.Join(ctx, "team.b.chat", nil)
		assertCode(t, err, client.CodeForbidden, "join outside allow")
		err = c.Publish(ctx, "team.b.chat", "msg", 1)
		assertCode(t, err, client.CodeForbidden, "publish outside allow")
		if _, err := c.Join(ctx, "team.a.chat", nil); err != nil {
			t.Errorf("join inside allow: %v", err)
		}
	})

	t.Run("MintOverNATSAndHTTP", func(t *testing.T) {
		if node.NATSURL == "" || strings.HasPrefix(node.NATSURL, "nats://in-process") {
			t.Fatalf("node logged nats=%q on its listening line; want the embedded server's client URL (--nats-listen 127.0.0.1:0)", node.NATSURL)
		}
		k := harness.Mint(t, "--nats", node.NATSURL, "--user", "frank", "--room", "mint.a", "--room", "mint.b", "--ttl", "1m")
		c := node.Dial(t, k.URL)
		w := c.Welcome()
		slices.Sort(w.Rooms)
		if w.User != "frank" || w.Session != k.Session || !slices.Equal(w.Rooms, []string{"mint.a", "mint.b"}) {
			t.Errorf("welcome for a --nats key = %s; want user frank, rooms mint.a mint.b", w.Raw)
		}

		k = harness.Mint(t, "--http", node.HTTP, "--api-key", node.APIKey, "--user", "gina",
			"--meta", `{"role":"admin"}`, "--allow", "mint.>")
		c = node.Dial(t, k.URL)
		if w := c.Welcome(); w.User != "gina" || string(w.Meta) != `{"role":"admin"}` {
			t.Errorf("welcome for an --http key = %s; want user gina, meta {\"role\":\"admin\"}", w.Raw)
		}
		if _, err := c.Join(harness.Ctx(t, wait), "mint.c", nil); err != nil {
			t.Errorf("join inside --allow mint.>: %v", err)
		}
	})

	t.Run("ContinuousRoute", func(t *testing.T) {
		a := node.Dial(t, "/lobby")
		b := node.Dial(t, "/lobby")
		if !slices.Contains(a.Welcome().Rooms, "lobby.main") {
			t.Fatalf("welcome = %s; want auto-joined room lobby.main", a.Welcome().Raw)
		}
		harness.WaitJoined(t, a, "lobby.main")
		harness.WaitJoined(t, b, "lobby.main")
		ctx := harness.Ctx(t, wait)
		// b is in lobby.main from its route: a publish there reaches it.
		if err := a.Publish(ctx, "lobby.main", "hello", 42); err != nil {
			t.Fatal(err)
		}
		if ev := harness.WaitEvent(t, b, wait, "hello on the route's room", harness.IsEvent("lobby.main", "hello")); string(ev.Data) != "42" {
			t.Errorf("got %s", ev.Raw)
		}
		_, err := a.Join(ctx, "elsewhere", nil)
		assertCode(t, err, client.CodeForbidden, "join outside the route's allow")
	})

	t.Run("HTTPPublish", func(t *testing.T) {
		c := node.Connect(t, harness.Claims{User: "hank", Rooms: []string{"news"}})
		harness.WaitJoined(t, c, "news")
		node.Publish(t, "news", "headline", map[string]string{"title": "roomcast ships"})
		ev := harness.WaitEvent(t, c, wait, "headline", harness.IsEvent("news", "headline"))
		if ev.From != "" || string(ev.Data) != `{"title":"roomcast ships"}` {
			t.Errorf("got %s; want no from, the posted data", ev.Raw)
		}
		// Without the API key: refused, in JSON.
		resp, err := node.PostKey("/_/publish", "", map[string]any{"room": "news", "event": "x", "data": 1})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusUnauthorized || !json.Valid(resp.Body) {
			t.Errorf("POST /_/publish without key: HTTP %d %s; want 401 with a JSON body", resp.Status, resp.Body)
		}
	})

	t.Run("Compression", func(t *testing.T) {
		// Over the node's default compression-min-size, so frames are
		// really compressed both ways; repeated to exercise reuse.
		big := strings.Repeat("roomcast compresses this. ", 100)
		claims := harness.Claims{Rooms: []string{"zip.room"}}
		z1 := node.DialWith(t, node.MintKey(t, claims).URL, &client.Options{Compression: true})
		z2 := node.DialWith(t, node.MintKey(t, claims).URL, &client.Options{Compression: true})
		plain := node.Connect(t, claims)
		if !z1.Compressed() || !z2.Compressed() {
			t.Fatalf("the node declined permessage-deflate (its --compression defaults to on)")
		}
		for _, c := range []*client.Client{z1, z2, plain} {
			harness.WaitJoined(t, c, "zip.room")
		}
		ctx := harness.Ctx(t, wait)
		for i := range 3 {
			data := fmt.Sprintf("%d:%s", i, big)
			if err := z1.Publish(ctx, "zip.room", "big", data); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			want, _ := json.Marshal(data)
			for name, c := range map[string]*client.Client{"z1": z1, "z2": z2, "plain": plain} {
				ev := harness.WaitEvent(t, c, wait, "big on "+name, harness.IsEvent("zip.room", "big"))
				if string(ev.Data) != string(want) {
					t.Fatalf("%s got %d bytes of data, want %d", name, len(ev.Data), len(want))
				}
			}
		}
	})

	t.Run("SendAndRPC", func(t *testing.T) {
		nc, err := nats.Connect(node.NATSURL)
		if err != nil {
			t.Fatalf("connect to the embedded NATS at %s: %v", node.NATSURL, err)
		}
		defer nc.Close()
		c := node.Connect(t, harness.Claims{User: "ivan"})
		session := c.Welcome().Session
		sends, err := nc.SubscribeSync("rc.send." + session)
		if err != nil {
			t.Fatal(err)
		}
		rpc, err := nc.Subscribe("rc.rpc.math.double", func(m *nats.Msg) {
			var n int
			_ = json.Unmarshal(m.Data, &n)
			out, _ := json.Marshal(map[string]any{"n": 2 * n, "session": m.Header.Get("Rc-Session"), "user": m.Header.Get("Rc-User")})
			_ = m.Respond(out)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer rpc.Unsubscribe()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		ctx := harness.Ctx(t, wait)

		if err := c.Send(ctx, "typing", map[string]bool{"on": true}); err != nil {
			t.Fatalf("send: %v", err)
		}
		m, err := sends.NextMsg(wait)
		if err != nil {
			t.Fatalf("nothing on rc.send.%s: %v", session, err)
		}
		if m.Header.Get("Rc-Event") != "typing" || m.Header.Get("Rc-User") != "ivan" || string(m.Data) != `{"on":true}` {
			t.Errorf("rc.send message: headers %v data %s; want Rc-Event typing, Rc-User ivan, {\"on\":true}", m.Header, m.Data)
		}

		reply, err := c.RPC(ctx, "math.double", 21)
		if err != nil {
			t.Fatalf("rpc: %v", err)
		}
		var got struct {
			N             int
			Session, User string
		}
		if err := json.Unmarshal(reply, &got); err != nil || got.N != 42 || got.Session != session || got.User != "ivan" {
			t.Errorf("rpc reply %s; want n 42 and Rc-Session/Rc-User of the caller", reply)
		}
		_, err = c.RPC(ctx, "nobody.listens", 1)
		var e *client.Error
		if !errors.As(err, &e) || (e.Code != client.CodeUnavailable && e.Code != client.CodeTimeout && e.Code != client.CodeNotFound) {
			t.Errorf("rpc without a responder: %v; want error unavailable, timeout or not_found", err)
		}
	})

	if code, _, err := node.Get("/healthz"); code != 200 {
		t.Errorf("/healthz after the tests: %d %v", code, err)
	}
}

// assertRefused checks DESIGN.md's refusal of a bad key: HTTP 401 before
// the upgrade, with a JSON body.
func assertRefused(t *testing.T, err error, what string) {
	t.Helper()
	var he *client.HandshakeError
	if !errors.As(err, &he) {
		t.Errorf("%s: dial = %v; want HTTP 401 before the upgrade", what, err)
		return
	}
	ct := http.Header(he.Header).Get("Content-Type")
	if he.Status != http.StatusUnauthorized || !strings.HasPrefix(ct, "application/json") || !json.Valid(he.Body) {
		t.Errorf("%s: HTTP %d, Content-Type %q, body %q; want 401, application/json, a JSON body", what, he.Status, ct, he.Body)
	}
}

// assertCode checks that err is the node's `error` message with code.
func assertCode(t *testing.T, err error, code, what string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Errorf("%s: got %v; want error %s", what, err, code)
	}
}

func quote(s string) string {
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return `"` + s + `"`
}
