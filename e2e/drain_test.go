package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

// TestDrain checks DESIGN.md's SIGTERM behaviour: readiness goes false,
// new upgrades are refused, every session is told 1001 (so clients
// reconnect elsewhere), and the process exits cleanly within the grace
// period. The drain window is shortened so the test stays quick.
func TestDrain(t *testing.T) {
	t.Parallel()
	const window, grace = 2 * time.Second, 10 * time.Second
	node := harness.StartNode(t, harness.NodeConfig{ID: "drainer", Config: `
routes:
  - path: /d
    auth: public
    rooms: [drain.room]
`, Args: []string{"--drain-window", window.String(), "--drain-grace", grace.String()}})
	var clients []*client.Client
	for range 5 {
		clients = append(clients, node.Dial(t, "/d"))
	}
	start := time.Now()
	node.Terminate()

	harness.Eventually(t, wait, func() bool {
		code, _, _ := node.Get("/readyz")
		return code != 200
	}, "/readyz still 200 after SIGTERM")
	if node.Alive() {
		_, err := client.Dial(harness.Ctx(t, wait), node.URL("/d"), nil)
		var he *client.HandshakeError
		if err == nil {
			t.Errorf("a new upgrade was accepted while draining")
		} else if errors.As(err, &he) && he.Status < 500 {
			t.Errorf("upgrade while draining: HTTP %d %s; want a 5xx (or a closed listener)", he.Status, he.Body)
		}
	}
	for i, c := range clients {
		select {
		case <-c.Done():
			if code, reason := c.CloseCode(); code != client.CloseGoingAway {
				t.Errorf("client %d closed with %d %q; want 1001", i, code, reason)
			}
		case <-time.After(window + wait):
			t.Errorf("client %d not closed %v after SIGTERM (drain window %v)", i, time.Since(start), window)
		}
	}
	if err := node.WaitExit(grace + wait); err != nil {
		t.Errorf("node exited with %v after a drain; want status 0", err)
	}
	t.Logf("drained 5 sessions and exited in %v", time.Since(start).Round(time.Millisecond))
}
