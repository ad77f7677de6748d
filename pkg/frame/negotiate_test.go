package frame_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/frame"
)

// upgrade runs a real gobwas/ws upgrade with a Negotiator and returns the
// Sec-WebSocket-Extensions the server answered.
func upgrade(t *testing.T, offers ...string) (answer string, accepted bool) {
	t.Helper()
	req := "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, o := range offers {
		req += "Sec-WebSocket-Extensions: " + o + "\r\n"
	}
	req += "\r\n"
	var out bytes.Buffer
	var n frame.Negotiator
	u := ws.Upgrader{Negotiate: n.Negotiate}
	if _, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(req), &out}); err != nil {
		t.Fatalf("upgrade failed: %v\n%s", err, out.String())
	}
	resp, err := http.ReadResponse(bufio.NewReader(&out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("Sec-WebSocket-Extensions"), n.Accepted()
}

func TestNegotiator(t *testing.T) {
	const base = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
	for _, tc := range []struct {
		name   string
		offers []string
		want   string // "" = declined
	}{
		{"no offer", nil, ""},
		{"Firefox", []string{"permessage-deflate"}, base},
		{"Chrome and Safari", []string{"permessage-deflate; client_max_window_bits"}, base},
		{"client window bits value is not echoed", []string{"permessage-deflate; client_max_window_bits=10"}, base},
		{"client asks for no context takeover", []string{"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, base},
		{"server window 15 is echoed", []string{"permessage-deflate; server_max_window_bits=15"}, base + ";server_max_window_bits=15"},
		{"server window below 15 is declined", []string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{"fallback offer after a declined one", []string{"permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits"}, base},
		{"only the first acceptable offer", []string{"permessage-deflate, permessage-deflate; server_max_window_bits=15"}, base},
		{"offers in two header lines", []string{"permessage-deflate; server_max_window_bits=8", "permessage-deflate"}, base},
		{"unknown parameter is declined, not fatal", []string{"permessage-deflate; x-foo=1"}, ""},
		{"duplicate parameter is declined", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, ""},
		{"bad window bits value is declined", []string{"permessage-deflate; client_max_window_bits=20"}, ""},
		{"valued no_context_takeover is declined", []string{"permessage-deflate; server_no_context_takeover=1, permessage-deflate"}, base},
		{"other extension", []string{"x-webkit-deflate-frame"}, ""},
		{"other extension first", []string{"x-webkit-deflate-frame, permessage-deflate"}, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, accepted := upgrade(t, tc.offers...)
			if got != tc.want || accepted != (tc.want != "") {
				t.Errorf("answer %q (accepted %v), want %q", got, accepted, tc.want)
			}
		})
	}
}

func TestNegotiatorReset(t *testing.T) {
	var n frame.Negotiator
	opts, ok := httphead.ParseOptions([]byte("permessage-deflate"), nil)
	if !ok || len(opts) != 1 {
		t.Fatal("bad test offer")
	}
	opt := opts[0]
	if resp, _ := n.Negotiate(opt); resp.Size() == 0 || !n.Accepted() {
		t.Fatal("first offer not accepted")
	}
	if resp, _ := n.Negotiate(opt); resp.Size() != 0 {
		t.Fatal("second offer accepted in the same upgrade")
	}
	n.Reset()
	if n.Accepted() {
		t.Fatal("Accepted after Reset")
	}
	if resp, _ := n.Negotiate(opt); resp.Size() == 0 {
		t.Fatal("offer not accepted after Reset")
	}
}
