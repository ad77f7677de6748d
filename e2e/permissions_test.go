package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/backend"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
)

// TestNATSPermissions runs a node and back-ends under
// docs/nats-permissions.conf: the file parses with nats-server; a node
// under the node user works; the app user mints keys, owns sockets,
// publishes and answers rpc, but its control requests never reach a node;
// the sockets user may kick but not drain; the admin user may do both.
func TestNATSPermissions(t *testing.T) {
	t.Parallel()
	opts, err := server.ProcessConfigFile("../docs/nats-permissions.conf")
	if err != nil {
		t.Fatalf("docs/nats-permissions.conf does not parse: %v", err)
	}
	users := map[string]bool{}
	for _, u := range opts.Users {
		users[u.Username] = true
	}
	for _, u := range []string{"node", "app", "sockets", "admin"} {
		if !users[u] {
			t.Fatalf("docs/nats-permissions.conf has no user %q", u)
		}
	}
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, t.TempDir()
	ns := bustest.RunServerWith(t, opts)
	url := func(user string) string {
		return fmt.Sprintf("nats://%s:change-me-%s@%s", user, user, strings.TrimPrefix(ns.ClientURL(), "nats://"))
	}
	n := harness.StartNode(t, harness.NodeConfig{ID: "perm", NATS: url("node")})
	var violations atomic.Int64
	connect := func(user string) *nats.Conn {
		nc, err := nats.Connect(url(user), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
				violations.Add(1)
			}
		}))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	app, sockets, admin := connect("app"), connect("sockets"), connect("admin")
	ctx := harness.Ctx(t, 2*time.Minute)

	// The app: a per-request socket, an rpc method, a room publish.
	be, err := backend.New(app, backend.Options{PublicURL: strings.Replace(n.WS, "ws:", "http:", 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	svc, err := be.Serve("perm.echo", func(_ context.Context, r *backend.Request) (any, error) { return r.Data, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	opened := make(chan struct{})
	u, err := be.Use(ctx, backend.Claims{User: "ada", Rooms: []string{"perm.room"}}, func(s *backend.Socket) {
		s.OnOpen(func(backend.ConnectEvent) { close(opened) })
	})
	if err != nil {
		t.Fatalf("the app user cannot mint: %v", err)
	}
	c := dialURL(t, u)
	harness.WaitJoined(t, c, "perm.room")
	select {
	case <-opened:
	case <-time.After(wait):
		t.Fatal("the app user did not get the connect event")
	}
	if r, err := c.RPC(ctx, "perm.echo", 7); err != nil || string(r) != "7" {
		t.Fatalf("the app user cannot answer rpc: %s %v", r, err)
	}
	if err := be.Publish("perm.room", "news", 1); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvent(t, c, wait, "the app's publish", harness.IsEvent("perm.room", "news"))

	// The app cannot kick: the server refuses the publish.
	if err := app.Publish("rc.control.kick", []byte(`{"user":"ada"}`)); err != nil {
		t.Fatal(err)
	}
	_ = app.Flush()
	harness.Eventually(t, wait, func() bool { return violations.Load() > 0 }, "no permissions violation for the app's kick")
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("the app's kick went through: %v", err)
	}
	// The sockets user may not drain (and the node stays ready) ...
	before := violations.Load()
	_ = sockets.Publish("rc.control.drain", []byte(`{"node":"perm"}`))
	_ = sockets.Flush()
	harness.Eventually(t, wait, func() bool { return violations.Load() > before }, "no permissions violation for the sockets user's drain")
	if code, _, _ := n.Get("/readyz"); code != 200 {
		t.Fatalf("readyz %d after a refused drain", code)
	}
	// ... but may kick, as the admin may.
	m, err := sockets.Request("rc.control.kick", []byte(`{"user":"ada","code":4000}`), wait)
	if err != nil || !strings.Contains(string(m.Data), `"affected":1`) {
		t.Fatalf("kick as sockets: %v %s", err, m.Data)
	}
	<-c.Done()
	c2 := n.Connect(t, harness.Claims{User: "bob"})
	m, err = admin.Request("rc.control.kick", []byte(`{"user":"bob"}`), wait)
	if err != nil || !strings.Contains(string(m.Data), `"affected":1`) {
		t.Fatalf("kick as admin: %v %s", err, m.Data)
	}
	<-c2.Done()
	if code, _ := c2.CloseCode(); code != 4003 {
		t.Fatalf("kicked with %d, want the default 4003", code)
	}
}
