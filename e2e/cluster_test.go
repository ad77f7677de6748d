package e2e

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// TestCluster runs three node processes against one real NATS server (in
// this test process, JetStream on) and checks that they behave as one:
// keys redeem anywhere, and room, session, user and HTTP publishes reach
// every node.
func TestCluster(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "a", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "b", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "c", NATS: ns.ClientURL()},
	)
	a, b, c := nodes[0], nodes[1], nodes[2]
	nc := bustest.Connect(t, ns)

	t.Run("KeyMintedOnARedeemedOnB", func(t *testing.T) {
		k := a.MintKey(t, harness.Claims{User: "ivy"})
		cl := b.Dial(t, k.URL)
		if w := cl.Welcome(); w.Node != "b" || w.Session != k.Session || w.User != "ivy" {
			t.Errorf("welcome = %s; want node b, session %q, user ivy", w.Raw, k.Session)
		}
		// Exactly once cluster-wide: a third node refuses it too.
		_, err := client.Dial(harness.Ctx(t, wait), c.URL(k.URL), nil)
		assertRefused(t, err, "key already redeemed on another node")
	})

	t.Run("MintOverClusterNATS", func(t *testing.T) {
		k := harness.Mint(t, "--nats", ns.ClientURL(), "--user", "jack", "--room", "x.minted")
		cl := c.Dial(t, k.URL)
		if w := cl.Welcome(); w.Node != "c" || w.User != "jack" || w.Session != k.Session {
			t.Errorf("welcome = %s; want node c, user jack, session %q", w.Raw, k.Session)
		}
	})

	// One session per node, all in room "x.room"; sb2 is a second session
	// of bob's, on node c, for rc.user.<user>.
	claims := func(user string) harness.Claims {
		return harness.Claims{User: user, Allow: []string{"x.>"}}
	}
	sa := a.Connect(t, claims("alice"))
	sb := b.Connect(t, claims("bob"))
	sc := c.Connect(t, claims("carol"))
	sb2 := c.Connect(t, claims("bob"))
	all := map[string]*client.Client{"a": sa, "b": sb, "c": sc, "c/bob": sb2}
	ctx := harness.Ctx(t, 2*wait)
	for name, cl := range all {
		if _, err := cl.Join(ctx, "x.room", nil); err != nil {
			t.Fatalf("join on %s: %v", name, err)
		}
	}

	// expectAll waits for the event on every session.
	expectAll := func(t *testing.T, room, event, data, from string) {
		t.Helper()
		for name, cl := range all {
			ev := harness.WaitEvent(t, cl, wait, fmt.Sprintf("%s/%s on %s", room, event, name), harness.IsEvent(room, event))
			if string(ev.Data) != data || ev.From != from {
				t.Errorf("%s got %s; want data %s from %q", name, ev.Raw, data, from)
			}
		}
	}

	t.Run("PublishFromAReachesBAndC", func(t *testing.T) {
		if err := sa.Publish(ctx, "x.room", "chat", map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
		expectAll(t, "x.room", "chat", `{"n":1}`, sa.Welcome().Session)
	})

	t.Run("NATSPublishWithRcEvent", func(t *testing.T) {
		m := nats.NewMsg("rc.room.x.room")
		m.Header.Set("Rc-Event", "deploy")
		m.Data = []byte(`{"version":"1.2.3"}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		expectAll(t, "x.room", "deploy", `{"version":"1.2.3"}`, "")
		// No header: the event is "message" (DESIGN.md default).
		if err := nc.Publish("rc.room.x.room", []byte(`"plain"`)); err != nil {
			t.Fatal(err)
		}
		expectAll(t, "x.room", "message", `"plain"`, "")
	})

	t.Run("HTTPPublishOnC", func(t *testing.T) {
		c.Publish(t, "x.room", "http", []int{1, 2, 3})
		expectAll(t, "x.room", "http", `[1,2,3]`, "")
	})

	// direct publishes a direct message on subject and then a marker to the
	// room; every session must see the marker, and the direct message
	// exactly on the sessions in want, before the marker.
	direct := func(t *testing.T, subject, marker string, want ...*client.Client) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set("Rc-Event", "dm")
		m.Data = json.RawMessage(`{"secret":"` + marker + `"}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		mk := nats.NewMsg("rc.room.x.room")
		mk.Header.Set("Rc-Event", marker)
		if err := nc.PublishMsg(mk); err != nil {
			t.Fatal(err)
		}
		for name, cl := range all {
			wanted := false
			for _, w := range want {
				wanted = wanted || w == cl
			}
			got := false
			harness.WaitEvent(t, cl, wait, marker+" on "+name, func(ev client.Event) bool {
				if ev.Type == client.TypeEvent && ev.Room == "" && ev.Event == "dm" {
					got = true
					if string(ev.Data) != `{"secret":"`+marker+`"}` {
						t.Errorf("%s: direct message %s", name, ev.Raw)
					}
				}
				return ev.Room == "x.room" && ev.Event == marker
			})
			if wanted && !got {
				// It may still come after the marker: subjects are not
				// ordered with each other, so wait for it.
				harness.WaitEvent(t, cl, wait, "direct message on "+name, harness.IsEvent("", "dm"))
			}
			if !wanted && got {
				t.Errorf("%s received a direct message for %s", name, subject)
			}
		}
	}

	t.Run("SessionSubject", func(t *testing.T) {
		direct(t, "rc.session."+sb.Welcome().Session, "after-session-dm", sb)
	})

	t.Run("UserSubject", func(t *testing.T) {
		direct(t, "rc.user.bob", "after-user-dm", sb, sb2)
	})
}
