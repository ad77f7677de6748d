package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

const (
	garbageFrames  = 1000 // frames sent in total
	garbageWorkers = 4    // raw connections sending at the same time
	// tickEvery paces the watched broadcast: 40/s stays under the node's
	// default per-session rate limit (50/s), so no tick is refused.
	tickEvery = 25 * time.Millisecond
	// maxTickGap is the longest a watcher may go without a broadcast while
	// the node is under attack; generous for a loaded 2-core machine.
	maxTickGap = 5 * time.Second
)

// TestGarbageFrames sends 1,000 random frames (random bytes, random
// opcodes, invalid JSON, huge frames, lying lengths, binary frames,
// fragmented garbage, bad control frames) from several raw connections,
// while a watcher on the same node receives a steady broadcast. The
// watcher must get every broadcast in order without a long gap, and the
// node must still be healthy and serving afterwards.
func TestGarbageFrames(t *testing.T) {
	t.Parallel()
	node := harness.StartNode(t, harness.NodeConfig{ID: "garbage", Config: `
routes:
  - path: /fuzz
    auth: public
    rooms: [fuzz.watch]
    allow: ["fuzz.>"]
`})
	// The watcher counts every tick, so it must never drop an event.
	watcher := node.DialWith(t, "/fuzz", &client.Options{EventBuffer: 8192, BlockOnFullEvents: true})
	pub := node.Dial(t, "/fuzz")
	harness.WaitJoined(t, watcher, "fuzz.watch")
	ctx := harness.Ctx(t, 2*time.Minute)

	rx := newTickReceiver(watcher)
	stopTicks := make(chan struct{})
	var published atomic.Int64
	tickErr := make(chan error, 1)
	go func() {
		for i := int64(1); ; i++ {
			select {
			case <-stopTicks:
				tickErr <- nil
				return
			default:
			}
			if err := pub.Publish(ctx, "fuzz.watch", "tick", i, client.NoEcho()); err != nil {
				tickErr <- fmt.Errorf("publish tick %d: %w", i, err)
				return
			}
			published.Store(i)
			time.Sleep(tickEvery) // pacing the load, not waiting for a condition
		}
	}()
	harness.Eventually(t, wait, func() bool { return rx.count() >= 5 }, "watcher got %d ticks before the garbage; want 5", rx.count())

	start := time.Now()
	var (
		wg       sync.WaitGroup
		sent     atomic.Int64
		dials    atomic.Int64
		refusals atomic.Int64
	)
	for w := range garbageWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := &garbageSender{url: node.URL("/fuzz"), rng: rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))}
			if err := g.run(ctx, garbageFrames/garbageWorkers, &sent, &dials, &refusals); err != nil {
				t.Errorf("garbage worker %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("sent %d garbage frames over %d connections (%d refused upgrades) in %v",
		sent.Load(), dials.Load(), refusals.Load(), time.Since(start).Round(time.Millisecond))

	close(stopTicks)
	if err := <-tickErr; err != nil {
		t.Errorf("publisher on the same node: %v", err)
	}
	last := published.Load()
	harness.Eventually(t, wait, func() bool { return rx.count() >= last || rx.failed() != "" },
		"watcher got %d of %d ticks", rx.count(), last)
	if msg := rx.failed(); msg != "" {
		t.Errorf("watcher: %s", msg)
	}
	if gap := rx.maxGap(); gap > maxTickGap {
		t.Errorf("watcher went %v without a broadcast during the garbage; want < %v", gap, maxTickGap)
	}
	if err := watcher.Err(); err != nil {
		t.Errorf("watcher connection ended: %v", err)
	}

	if code, body, err := node.Get("/healthz"); code != 200 {
		t.Errorf("/healthz after the garbage: %d %s %v", code, body, err)
	}
	// A fresh session still works end to end.
	fresh := node.Dial(t, "/fuzz")
	if _, err := fresh.Join(ctx, "fuzz.after", nil); err != nil {
		t.Fatalf("join after the garbage: %v", err)
	}
	if err := fresh.Publish(ctx, "fuzz.after", "ok", true); err != nil {
		t.Fatalf("publish after the garbage: %v", err)
	}
	harness.WaitEvent(t, fresh, wait, "own echo after the garbage", harness.IsEvent("fuzz.after", "ok"))
	if !node.Alive() {
		t.Fatalf("node exited: %v", node.ExitErr())
	}
	if log := node.Log(); strings.Contains(log, "panic") || strings.Contains(log, "goroutine ") {
		t.Errorf("node logged a panic during the garbage (see its log)")
	}
}

// tickReceiver checks that a client receives ticks 1, 2, 3… in order and
// measures the longest gap between two.
type tickReceiver struct {
	mu   sync.Mutex
	n    int64
	gap  time.Duration
	last time.Time
	err  string
}

func newTickReceiver(c *client.Client) *tickReceiver {
	r := &tickReceiver{}
	go func() {
		for ev := range c.Events() {
			if ev.Type != client.TypeEvent || ev.Room != "fuzz.watch" || ev.Event != "tick" {
				continue
			}
			var i int64
			_ = json.Unmarshal(ev.Data, &i)
			r.mu.Lock()
			now := time.Now()
			switch {
			case r.err != "":
			case i != r.n+1:
				r.err = fmt.Sprintf("tick %d after tick %d: lost or reordered", i, r.n)
			default:
				if r.n > 0 {
					r.gap = max(r.gap, now.Sub(r.last))
				}
				r.n, r.last = i, now
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *tickReceiver) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *tickReceiver) maxGap() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gap
}

func (r *tickReceiver) failed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// garbageSender owns one raw connection at a time, reconnecting whenever
// the node closes it (most garbage earns a close).
type garbageSender struct {
	url  string
	rng  *rand.Rand
	conn net.Conn
	dead chan struct{} // closed when the node closed conn
	left int           // frames before we drop conn ourselves
}

func (g *garbageSender) run(ctx context.Context, frames int, sent, dials, refusals *atomic.Int64) error {
	defer g.drop()
	failures := 0
	for n := 0; n < frames; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if g.conn == nil || g.isDead() || g.left <= 0 {
			g.drop()
			if err := g.dial(ctx); err != nil {
				// Refusals are allowed (a node may limit upgrades per IP);
				// a node that stops accepting altogether is not.
				refusals.Add(1)
				if failures++; failures > 100 {
					return fmt.Errorf("100 upgrades in a row failed, last: %v", err)
				}
				time.Sleep(20 * time.Millisecond) // back off before redialing
				continue
			}
			failures = 0
			dials.Add(1)
		}
		frs, closeAfter := garbage(g.rng)
		for _, f := range frs {
			n++
			g.left--
			sent.Add(1)
			_ = g.conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
			if _, err := g.conn.Write(f); err != nil {
				closeAfter = true
				break
			}
		}
		if closeAfter {
			g.drop()
		}
	}
	return nil
}

func (g *garbageSender) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(dctx, g.url)
	if err != nil {
		return err
	}
	g.conn, g.dead, g.left = conn, make(chan struct{}), 1+g.rng.IntN(40)
	var r io.Reader = conn
	if br != nil {
		r = br // bytes the node sent right after the 101 (its welcome)
	}
	dead := g.dead
	// Read everything the node sends so its queue never blocks on us;
	// EOF means it closed the connection.
	go func() {
		_, _ = io.Copy(io.Discard, r)
		close(dead)
	}()
	return nil
}

func (g *garbageSender) isDead() bool {
	select {
	case <-g.dead:
		return true
	default:
		return false
	}
}

func (g *garbageSender) drop() {
	if g.conn != nil {
		g.conn.Close()
		<-g.dead
		g.conn = nil
	}
}

// Garbage generators. Each returns the raw bytes of one or more frames and
// whether the stream is beyond repair afterwards (we then drop it).

// frame encodes one frame; mask=false makes the protocol error of an
// unmasked client frame.
func frame(op ws.OpCode, fin bool, rsv byte, payload []byte, mask bool) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv & 7, OpCode: op, Length: int64(len(payload))}
	p := payload
	if mask {
		h.Masked, h.Mask = true, ws.NewMask()
		p = bytes.Clone(payload)
		ws.Cipher(p, h.Mask, 0)
	}
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, h)
	b.Write(p)
	return b.Bytes()
}

func text(s string) []byte { return frame(ws.OpText, true, 0, []byte(s), true) }

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

var badJSON = []string{
	``, ` `, `{`, `}`, `{"type":`, `{"type":"join"`, `[`, `null`, `true`, `42`, `"join"`,
	`{"type":"join",}`, `{type:"join"}`, `{'type':'join'}`, `{"type":"join","room":"a"}}`,
	`{"type":"publish","room":"fuzz.junk","event":"e","data":}`, "{\"type\":\"ping\"}\x00", `{"type":"\u0000"}`,
	`{"type":"join","room":"fuzz.junk"} {"type":"leave"}`, "\xef\xbb\xbf{\"type\":\"ping\"}",
}

var badMessages = []string{
	`{}`, `{"type":""}`, `{"type":"nope"}`, `{"type":123}`, `{"type":null}`, `{"type":["join"]}`,
	`{"type":"join"}`, `{"type":"join","room":5}`, `{"type":"join","room":"bad room"}`, `{"type":"join","room":"a..b"}`,
	`{"type":"join","room":"fuzz.*"}`, `{"type":"join","room":"fuzz.>"}`, `{"type":"join","room":"` + strings.Repeat("a", 200) + `"}`,
	`{"type":"join","room":"outside.allow"}`, `{"type":"join","room":"fuzz.junk","meta":"` + strings.Repeat("m", 8000) + `"}`,
	`{"type":"leave"}`, `{"type":"leave","room":"never.joined"}`, `{"type":"publish"}`, `{"type":"publish","room":"fuzz.junk"}`,
	`{"type":"publish","room":"fuzz.junk","event":5,"data":1}`, `{"type":"publish","room":"outside.allow","event":"e","data":1}`,
	`{"type":"send"}`, `{"type":"send","event":"e","data":{"a":1}}`, `{"type":"rpc"}`, `{"type":"rpc","method":"no.such.method","data":1}`,
	`{"type":"rpc","method":"bad method","data":1}`, `{"type":"presence"}`, `{"type":"presence","room":"bad room"}`,
	`{"type":"ping","id":-1}`, `{"type":"ping","id":1.5}`, `{"type":"ping","id":"x"}`, `{"type":"ping","id":18446744073709551616}`,
	`{"type":"welcome","session":"hijack"}`, `{"type":"ack","id":1}`, `{"type":"publish","room":"fuzz.junk","event":"e","data":1,"echo":"no"}`,
}

var validMessages = []string{
	`{"type":"ping","id":1}`, `{"type":"ping"}`, `{"type":"presence","room":"fuzz.watch","id":2}`,
	`{"type":"join","room":"fuzz.junk","id":3}`, `{"type":"leave","room":"fuzz.junk","id":4}`,
	`{"type":"publish","room":"fuzz.junk","event":"noise","data":{"x":[1,2,3]},"id":5}`,
	`{"type":"join","room":"fuzz.junk","meta":{"a":1}}` + "\n" + `{"type":"ping"}`,
}

// garbage returns the next random frames to send.
func garbage(rng *rand.Rand) (frames [][]byte, closeAfter bool) {
	one := func(b []byte) [][]byte { return [][]byte{b} }
	switch rng.IntN(15) {
	case 0: // bytes that are not a frame at all
		return one(randBytes(rng, 1+rng.IntN(256))), true
	case 1: // any opcode, fin and rsv bits, random payload
		return one(frame(ws.OpCode(rng.UintN(16)), rng.IntN(2) == 0, byte(rng.UintN(8)), randBytes(rng, rng.IntN(300)), true)), false
	case 2: // invalid JSON
		s := badJSON[rng.IntN(len(badJSON))]
		if rng.IntN(3) == 0 {
			s = string(randBytes(rng, rng.IntN(100)))
		}
		return one(text(s)), false
	case 3: // JSON that is not a valid message
		if rng.IntN(4) == 0 {
			room, _ := json.Marshal(string(randBytes(rng, 1+rng.IntN(40))))
			return one(text(`{"type":"join","room":` + string(room) + `}`)), false
		}
		return one(text(badMessages[rng.IntN(len(badMessages))])), false
	case 4: // over the 64 KiB message limit
		n := 64<<10 + 1 + rng.IntN(192<<10)
		return one(text(`{"type":"publish","room":"fuzz.junk","event":"big","data":"` + strings.Repeat("a", n) + `"}`)), true
	case 5: // a header announcing far more than will ever come
		h := ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(1) << (20 + rng.IntN(42)), Masked: true, Mask: ws.NewMask()}
		var b bytes.Buffer
		_ = ws.WriteHeader(&b, h)
		b.Write(randBytes(rng, rng.IntN(64)))
		return one(b.Bytes()), true
	case 6: // binary frames
		return one(frame(ws.OpBinary, true, 0, randBytes(rng, rng.IntN(2000)), true)), false
	case 7: // fragmented garbage
		return fragmented(rng), rng.IntN(2) == 0
	case 8: // unmasked client frame
		return one(frame(ws.OpText, true, 0, []byte(`{"type":"ping"}`), false)), false
	case 9: // close frames with bad codes or payloads
		bodies := [][]byte{{0x03}, {0, 0}, {0x03, 0xe7}, {0x03, 0xed}, {0x03, 0xee}, {0x13, 0x88},
			append([]byte{0x03, 0xe8}, 0xff, 0xfe), append([]byte{0x03, 0xe8}, bytes.Repeat([]byte("r"), 123)...)}
		return one(frame(ws.OpClose, true, 0, bodies[rng.IntN(len(bodies))], true)), false
	case 10: // control frames: too long, fragmented, unsolicited pong, fine ping
		switch rng.IntN(4) {
		case 0:
			return one(frame(ws.OpPing, true, 0, randBytes(rng, 126+rng.IntN(200)), true)), false
		case 1:
			return one(frame(ws.OpPing, false, 0, []byte("x"), true)), false
		case 2:
			return one(frame(ws.OpPong, true, 0, randBytes(rng, rng.IntN(125)), true)), false
		default:
			return one(frame(ws.OpPing, true, 0, []byte("hello"), true)), false
		}
	case 11: // deep nesting
		d := 1000 + rng.IntN(30000)
		s := `{"type":"publish","room":"fuzz.junk","event":"deep","data":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}`
		if rng.IntN(2) == 0 {
			s = strings.Repeat("[", d) // unbalanced
		}
		return one(text(s)), false
	case 12: // invalid UTF-8
		return one(text("{\"type\":\"publish\",\"room\":\"fuzz.junk\",\"event\":\"\xff\xfe\",\"data\":\"\xc3\x28\"}")), false
	case 13: // compressed bit without negotiation
		return one(frame(ws.OpText, true, 4, []byte(`{"type":"ping"}`), true)), false
	default: // valid messages between the garbage
		return one(text(validMessages[rng.IntN(len(validMessages))])), false
	}
}

// fragmented builds a run of fragments, mostly wrong: continuation without
// a start, a new message inside a fragmented one, pings between fragments,
// a message that never ends, JSON split across fragments.
func fragmented(rng *rand.Rand) [][]byte {
	msg := []byte(validMessages[rng.IntN(len(validMessages))])
	var out [][]byte
	if rng.IntN(4) == 0 {
		out = append(out, frame(ws.OpContinuation, rng.IntN(2) == 0, 0, randBytes(rng, rng.IntN(50)), true))
	}
	cut := 1 + rng.IntN(len(msg)-1)
	out = append(out, frame(ws.OpText, false, 0, msg[:cut], true))
	for range rng.IntN(4) {
		switch rng.IntN(4) {
		case 0:
			out = append(out, frame(ws.OpPing, true, 0, []byte("mid"), true))
		case 1:
			out = append(out, frame(ws.OpText, false, 0, []byte("{"), true))
		case 2:
			out = append(out, frame(ws.OpBinary, true, 0, randBytes(rng, 10), true))
		default:
			out = append(out, frame(ws.OpContinuation, false, 0, randBytes(rng, rng.IntN(30)), true))
		}
	}
	if rng.IntN(3) > 0 {
		out = append(out, frame(ws.OpContinuation, true, 0, msg[cut:], true))
	}
	return out
}
