package room

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/names"
)

// recorder is a test double of the loop's connection: it decodes every
// frame it is sent (splitting '\n'-batched messages) and, like the loop,
// fails sends once closed and tells the session it is gone.
type recorder struct {
	mu     sync.Mutex
	raw    []string
	msgs   []map[string]any
	cursor int
	closed bool
	code   uint16
	reason string
	bad    error // a frame that was not valid JSON

	session atomic.Pointer[Session]
}

var errRecorderClosed = errors.New("recorder: closed")

func (r *recorder) Send(f *frame.Prepared) error {
	if f.Op() != frame.OpText {
		return fmt.Errorf("recorder: opcode %v", f.Op())
	}
	p := f.Payload()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errRecorderClosed
	}
	for _, line := range bytes.Split(p, []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			r.bad = fmt.Errorf("frame %q: %w", line, err)
			continue
		}
		r.raw = append(r.raw, string(line))
		r.msgs = append(r.msgs, m)
	}
	return nil
}

func (r *recorder) Close(code uint16, reason string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed, r.code, r.reason = true, code, reason
	r.mu.Unlock()
	// The loop calls Handler.OnClose from inside Close; so do we.
	if s := r.session.Load(); s != nil {
		s.Closed(code)
	}
}

func (r *recorder) closeCode() uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code
}

// next waits for the next unread message.
func (r *recorder) next(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	bustest.Eventually(t, 5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.cursor < len(r.msgs) {
			m = r.msgs[r.cursor]
			r.cursor++
			return true
		}
		return false
	}, "no message arrived; got %v", r.all())
	return m
}

// expect reads the next message and checks its type.
func (r *recorder) expect(t *testing.T, typ string) map[string]any {
	t.Helper()
	m := r.next(t)
	if m["type"] != typ {
		t.Fatalf("got %v, want type %q", m, typ)
	}
	return m
}

// find waits for an unread message for which ok is true, skipping others.
func (r *recorder) find(t *testing.T, what string, ok func(m map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	bustest.Eventually(t, 5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for ; r.cursor < len(r.msgs); r.cursor++ {
			if ok(r.msgs[r.cursor]) {
				got = r.msgs[r.cursor]
				r.cursor++
				return true
			}
		}
		return false
	}, "no %s arrived; got %v", what, r.all())
	return got
}

// has waits for any message, read or not, for which ok is true; it does
// not move the cursor (for messages whose order is not defined).
func (r *recorder) has(t *testing.T, what string, ok func(m map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	bustest.Eventually(t, 5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.msgs {
			if ok(m) {
				got = m
				return true
			}
		}
		return false
	}, "no %s arrived; got %v", what, r.all())
	return got
}

func (r *recorder) findType(t *testing.T, typ string) map[string]any {
	t.Helper()
	return r.find(t, typ, func(m map[string]any) bool { return m["type"] == typ })
}

// quiet checks that no unread message arrives within d (used after a
// message that must not be delivered; d is short, and a later positive
// check in the same test orders it).
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cursor < len(r.msgs) {
		t.Fatalf("unexpected messages: %v", r.msgs[r.cursor:])
	}
}

func (r *recorder) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.msgs...)
}

func startHub(t testing.TB, srv *server.Server, name string, edit func(o *Options)) *Hub {
	t.Helper()
	nc := bustest.Connect(t, srv)
	o := Options{Node: name, NC: nc, PingInterval: 25 * time.Second}
	if edit != nil {
		edit(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// open opens a session on h and reads its welcome.
func open(t *testing.T, h *Hub, id Identity) (*Session, *recorder) {
	t.Helper()
	rec := &recorder{}
	s := h.Open(id, rec)
	rec.session.Store(s)
	rec.expect(t, "welcome")
	return s, rec
}

func allowAll() *names.Patterns { return names.All() }

// send feeds one client message.
func send(s *Session, msg string) { s.Receive([]byte(msg)) }

// sessionsOf returns the session ids in a session:list.
func sessionsOf(m map[string]any) []string {
	var ids []string
	for _, e := range m["sessions"].([]any) {
		ids = append(ids, e.(map[string]any)["session"].(string))
	}
	return ids
}

func hasAll(got []string, want ...string) bool {
	set := strings.Join(got, ",") + ","
	for _, w := range want {
		if !strings.Contains(set, w+",") {
			return false
		}
	}
	return len(got) == len(want)
}
