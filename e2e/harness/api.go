package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/client"
)

// Claims are the claims of a one-time key (DESIGN.md "Connecting").
type Claims struct {
	User    string          `json:"user,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	Rooms   []string        `json:"rooms,omitempty"`
	Allow   []string        `json:"allow,omitempty"`
	Session string          `json:"session,omitempty"`
	TTL     string          `json:"ttl,omitempty"`
}

// Key is what POST /_/keys and roomcast-mint print.
type Key struct {
	Key       string          `json:"key"`
	URL       string          `json:"url"`
	Session   string          `json:"session"`
	ExpiresAt json.RawMessage `json:"expires_at"`
}

// Response is an HTTP answer kept whole for assertions.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Post sends body as JSON to path with the node's API key as bearer.
func (n *Node) Post(path string, body any) (*Response, error) {
	return n.PostKey(path, n.APIKey, body)
}

// PostKey is Post with another bearer key; "" sends none.
func (n *Node) PostKey(path, apiKey string, body any) (*Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, n.HTTP+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	hc := http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: rb}, err
}

// MintKey mints a one-time key with POST /_/keys and checks the answer's
// shape (DESIGN.md: {"key","url","session","expires_at"}, url =
// /_/connect/<key>).
func (n *Node) MintKey(t testing.TB, c Claims) Key {
	t.Helper()
	resp, err := n.Post("/_/keys", c)
	if err != nil {
		t.Fatalf("POST %s/_/keys: %v", n.ID, err)
	}
	if resp.Status != http.StatusOK && resp.Status != http.StatusCreated {
		t.Fatalf("POST %s/_/keys: HTTP %d: %s", n.ID, resp.Status, resp.Body)
	}
	return parseKey(t, resp.Body)
}

func parseKey(t testing.TB, b []byte) Key {
	t.Helper()
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatalf("key answer is not JSON: %v: %s", err, b)
	}
	if k.Key == "" || k.URL != "/_/connect/"+k.Key || k.Session == "" || len(k.ExpiresAt) == 0 {
		t.Fatalf("key answer %s: want {key, url=/_/connect/<key>, session, expires_at}", b)
	}
	return k
}

// Publish publishes with POST /_/publish and fails the test unless the
// node accepts it.
func (n *Node) Publish(t testing.TB, room, event string, data any) {
	t.Helper()
	resp, err := n.Post("/_/publish", map[string]any{"room": room, "event": event, "data": data})
	if err != nil {
		t.Fatalf("POST %s/_/publish: %v", n.ID, err)
	}
	if resp.Status/100 != 2 {
		t.Fatalf("POST %s/_/publish: HTTP %d: %s", n.ID, resp.Status, resp.Body)
	}
}

// URL returns the node's WebSocket URL for a key's url (or any path).
func (n *Node) URL(path string) string { return n.WS + path }

// Dial connects a client to path on this node (a key's URL or a route),
// closed when the test ends. Events are buffered generously (8192); a
// client whose events nobody reads then drops them rather than stalling
// its own acks. Tests that count every event use DialWith and
// BlockOnFullEvents, and read continuously.
func (n *Node) Dial(t testing.TB, path string) *client.Client {
	t.Helper()
	return n.DialWith(t, path, &client.Options{EventBuffer: 8192})
}

// DialWith is Dial with explicit client options.
func (n *Node) DialWith(t testing.TB, path string, o *client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.URL(path), o)
	if err != nil {
		t.Fatalf("dial %s%s: %v", n.ID, client.RedactURL(path), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Connect mints a key with claims on n and connects with it.
func (n *Node) Connect(t testing.TB, c Claims) *client.Client {
	t.Helper()
	return n.Dial(t, n.MintKey(t, c).URL)
}

// Mint runs roomcast-mint with args and returns the key it printed.
func Mint(t testing.TB, args ...string) Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, MintBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("roomcast-mint %s: %v\nstderr: %s", redactArgs(args), err, stderr.String())
	}
	return parseKey(t, bytes.TrimSpace(stdout.Bytes()))
}

// redactArgs hides the value of --api-key.
func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case i > 0 && (args[i-1] == "--api-key" || args[i-1] == "-api-key"):
			out[i] = "REDACTED"
		case strings.HasPrefix(a, "--api-key="):
			out[i] = "--api-key=REDACTED"
		default:
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

// Ctx returns a context that ends after d or with the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitEvent reads c's events until one satisfies match, skipping others,
// and fails the test after d.
func WaitEvent(t testing.TB, c *client.Client, d time.Duration, what string, match func(client.Event) bool) client.Event {
	t.Helper()
	timer := time.NewTimer(d)
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
			t.Fatalf("waiting for %s: nothing within %v", what, d)
			return client.Event{}
		}
	}
}

// WaitJoined waits for the session:list of each room: rooms from a key's
// claims or a route are joined after the welcome, and only the list says
// the node has subscribed, so a publish made earlier may miss the session.
func WaitJoined(t testing.TB, c *client.Client, rooms ...string) {
	t.Helper()
	for _, room := range rooms {
		WaitEvent(t, c, 15*time.Second, "session:list of "+room, func(ev client.Event) bool {
			return ev.Type == client.TypeSessionList && ev.Room == room
		})
	}
}

// IsEvent matches a room event (Type "event") by room and event name;
// room "" matches direct messages.
func IsEvent(room, event string) func(client.Event) bool {
	return func(ev client.Event) bool {
		return ev.Type == client.TypeEvent && ev.Room == room && ev.Event == event
	}
}

// Describe formats an event for failure messages.
func Describe(ev client.Event) string {
	return fmt.Sprintf("%s %s", ev.Type, ev.Raw)
}
