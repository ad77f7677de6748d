package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/client"
)

func TestClientBehindProxies(t *testing.T) {
	p, err := parseProxies([]string{"10.0.0.0/8", "192.168.1.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer, xff, realIP, want string
	}{
		{"203.0.113.5", "", "", "203.0.113.5"},                       // no proxy
		{"203.0.113.5", "1.2.3.4", "", "203.0.113.5"},                // untrusted peer: headers ignored
		{"10.1.2.3", "", "", "10.1.2.3"},                             // proxy that sent nothing
		{"10.1.2.3", "198.51.100.9", "", "198.51.100.9"},             // one proxy
		{"10.1.2.3", "198.51.100.9, 10.4.4.4", "", "198.51.100.9"},   // two proxies
		{"10.1.2.3", "6.6.6.6, 198.51.100.9", "", "198.51.100.9"},    // client's forged entry skipped
		{"10.1.2.3", "garbage, 198.51.100.9", "", "198.51.100.9"},    // garbage left of the client
		{"10.1.2.3", "198.51.100.9, garbage", "", "10.1.2.3"},        // garbage from a proxy: the peer
		{"10.1.2.3", "198.51.100.9:4711", "", "198.51.100.9"},        // with a port
		{"10.1.2.3", "[2001:db8::1]:443", "", "2001:db8::1"},         // IPv6 with a port
		{"10.1.2.3", "2001:db8::1", "", "2001:db8::1"},               // IPv6
		{"10.1.2.3", "10.9.9.9, 192.168.1.7", "", "10.9.9.9"},        // only proxies: the farthest
		{"10.1.2.3", "", "198.51.100.9", "198.51.100.9"},             // X-Real-Ip
		{"10.1.2.3", "198.51.100.1", "198.51.100.2", "198.51.100.1"}, // X-Forwarded-For wins
		{"::ffff:10.1.2.3", "198.51.100.9", "", "198.51.100.9"},      // v4-mapped peer
		{"192.168.1.7", "198.51.100.9", "", "198.51.100.9"},          // single address entry
		{"192.168.1.8", "198.51.100.9", "", "192.168.1.8"},           // its neighbour is not trusted
		{"fd12::1", "198.51.100.9", "", "198.51.100.9"},              // IPv6 proxy
	} {
		h := http.Header{}
		if tc.xff != "" {
			h.Set("X-Forwarded-For", tc.xff)
		}
		if tc.realIP != "" {
			h.Set("X-Real-Ip", tc.realIP)
		}
		got := p.client(netip.MustParseAddr(tc.peer), h.Get)
		if got.String() != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q, X-Real-Ip %q: client %s; want %s", tc.peer, tc.xff, tc.realIP, got, tc.want)
		}
	}
	if got := proxies(nil).client(netip.MustParseAddr("10.1.2.3"), http.Header{"X-Forwarded-For": {"1.2.3.4"}}.Get); got.String() != "10.1.2.3" {
		t.Errorf("no trusted proxies: client %s; want the peer", got)
	}
	if _, err := parseProxies([]string{"10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Errorf("bad CIDR: %v", err)
	}
}

// TestTrustedProxies runs a node that trusts 127.0.0.1 as its load
// balancer: the per-IP connection limit, the API rate limit, the auth hook
// and the connect event all see the address in X-Forwarded-For.
func TestTrustedProxies(t *testing.T) {
	n, base, _ := startNode(t, func(o *Options) {
		o.TrustedProxies = []string{"127.0.0.1"}
		o.MaxConnsPerIP = 1
		o.APIRate = 1
		o.Events = "on"
		o.Routes = []Route{{Path: "/chat", Auth: "public"}, {Path: "/app", Auth: "hook"}}
	})
	ws := strings.Replace(base, "http", "ws", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := func(ip string) *client.Options {
		return &client.Options{Header: http.Header{"X-Forwarded-For": {ip}}}
	}
	events, err := n.bus.NC.SubscribeSync("rc.events.connect")
	if err != nil {
		t.Fatal(err)
	}
	a, err := client.Dial(ctx, ws+"/chat", from("198.51.100.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	m, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	events.Unsubscribe() // unread events would hold up the node's NATS drain
	var ev struct{ Remote string }
	if json.Unmarshal(m.Data, &ev); ev.Remote != "198.51.100.1" {
		t.Errorf("connect event remote %q; want 198.51.100.1", ev.Remote)
	}
	// Another client behind the same balancer: its own slot.
	b, err := client.Dial(ctx, ws+"/chat", from("198.51.100.2"))
	if err != nil {
		t.Fatalf("second client behind the proxy: %v", err)
	}
	defer b.Close()
	var he *client.HandshakeError
	if _, err := client.Dial(ctx, ws+"/chat", from("198.51.100.1")); !errors.As(err, &he) || he.Status != 429 {
		t.Fatalf("second connection of 198.51.100.1: %v; want 429", err)
	}

	got := make(chan string, 1)
	sub, err := n.bus.NC.Subscribe("rc.auth.connect", func(m *nats.Msg) {
		var req hookRequest
		_ = json.Unmarshal(m.Data, &req)
		got <- req.Remote
		_ = m.Respond([]byte(`{"allow":true}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c, err := client.Dial(ctx, ws+"/app", from("198.51.100.3"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if r := <-got; r != "198.51.100.3" {
		t.Errorf("auth hook remote %q; want 198.51.100.3", r)
	}

	// The API limit (1/s, burst 3) is per client, not per balancer.
	apiFrom := func(ip string) int {
		req, _ := http.NewRequest("POST", base+"/_/publish", strings.NewReader(`{}`))
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	limited := false
	for i := 0; i < 20 && !limited; i++ {
		limited = apiFrom("198.51.100.4") == 429
	}
	if !limited {
		t.Fatal("API never rate-limited 198.51.100.4")
	}
	if code := apiFrom("198.51.100.5"); code == 429 {
		t.Fatal("198.51.100.5 limited for 198.51.100.4's requests")
	}
}
