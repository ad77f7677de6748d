package loop

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/certs"
	"github.com/roomcast/roomcast/pkg/certs/certstest"
)

const upgradeRequest = "GET /ws%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n"

// TestUpgradeOnKeptAliveConnection: a load balancer that keeps connections
// to the node open (nginx's upstream keepalive) sends an upgrade after a
// plain request on the same connection. It must become a WebSocket, a
// refusal must still be JSON, and then, over TLS too.
func TestUpgradeOnKeptAliveConnection(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "tls"}[secure]
		t.Run(name, func(t *testing.T) {
			var o Options
			if secure {
				cf, kf := certstest.WriteSelfSigned(t, t.TempDir(), 1)
				r, err := certs.New(cf, kf, nil)
				if err != nil {
					t.Fatal(err)
				}
				o.TLS = r.Config()
			}
			var seen []Request
			e := &echo{}
			o.Upgrade = func(r *Request) (Handler, *Rejection) {
				seen = append(seen, *r)
				if r.Query("deny") != "" {
					return nil, &Rejection{Status: 401, Body: []byte(`{"error":{"code":"unauthorized","message":"no"}}`), Reason: "key", RetryAfter: 3}
				}
				return e, nil
			}
			_, addr := startLoop(t, o, e)
			dial := func() net.Conn {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				if secure {
					nc = tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
				}
				_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
				t.Cleanup(func() { nc.Close() })
				return nc
			}
			plain := func(nc net.Conn, br *bufio.Reader) {
				t.Helper()
				io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != "plain /healthz" || resp.Close {
					t.Fatalf("plain request: %d %q close=%v", resp.StatusCode, b, resp.Close)
				}
			}

			// Refused after a plain request: JSON, Retry-After.
			nc := dial()
			br := bufio.NewReader(nc)
			plain(nc, br)
			io.WriteString(nc, strings.Replace(upgradeRequest, "%s", "?deny=1", 1))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) || resp.Header.Get("Retry-After") != "3" {
				t.Fatalf("refusal on a kept-alive connection: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}

			// Accepted after a plain request: a WebSocket on the loop.
			nc = dial()
			br = bufio.NewReader(nc)
			plain(nc, br)
			io.WriteString(nc, strings.Replace(upgradeRequest, "%s", "?room=1", 1))
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 {
				t.Fatalf("upgrade on a kept-alive connection: %d", resp.StatusCode)
			}
			for _, msg := range []string{"reused", strings.Repeat("z", 40000)} {
				if err := wsutil.WriteClientText(nc, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				got, err := wsutil.ReadServerText(struct {
					io.Reader
					io.Writer
				}{br, nc})
				if err != nil || string(got) != msg {
					t.Fatalf("echo: %d bytes, %v", len(got), err)
				}
			}
			last := seen[len(seen)-1]
			if last.Path != "/ws" || last.Query("room") != "1" || last.Header["X-Forwarded-For"] != "1.1.1.1, 2.2.2.2" || last.TLS != secure || !last.Remote.IsValid() {
				t.Fatalf("Upgrade saw %+v", last)
			}
			if err := ws.WriteFrame(nc, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))); err != nil {
				t.Fatal(err)
			}
			if f, err := readFrame(br); err != nil || f.Header.OpCode != ws.OpClose {
				t.Fatalf("close echo: %+v %v", f.Header, err)
			}

			// A plain GET on a WebSocket path, kept alive: 400 from
			// the upgrader, not the HTTP handler.
			nc = dial()
			br = bufio.NewReader(nc)
			plain(nc, br)
			io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != 400 {
				t.Fatalf("plain GET on a WebSocket path: %v %v", resp, err)
			}
		})
	}
}
