package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
)

// Tests run against a real nats-server with JetStream (bustest).

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		list []Config
		want string // "" = valid
	}{
		{[]Config{{Rooms: "chat.>", Size: 100, TTL: 10 * time.Minute}}, ""},
		{[]Config{{Rooms: "chat.>"}, {Rooms: "doc.*"}}, ""},
		{[]Config{{Rooms: "a.*.x"}, {Rooms: "a.*.y"}}, ""},
		{[]Config{{}}, "rooms is missing"},
		{[]Config{{Rooms: "chat..x"}}, "invalid"},
		{[]Config{{Rooms: "chat.>", Size: -1}}, "size -1"},
		{[]Config{{Rooms: "chat.>", Size: MaxSize + 1}}, "out of range"},
		{[]Config{{Rooms: "chat.>", TTL: time.Millisecond}}, "too short"},
		{[]Config{{Rooms: "chat.>", Replicas: 7}}, "replicas 7"},
		{[]Config{{Rooms: "chat.>"}, {Rooms: "chat.x"}}, "overlap"},
		{[]Config{{Rooms: "*.x"}, {Rooms: "chat.*"}}, "overlap"},
		{[]Config{{Rooms: ">"}, {Rooms: "a"}}, "overlap"},
	} {
		err := Validate(tc.list)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%v) = %v; want nil", tc.list, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%v) = %v; want an error containing %q", tc.list, err, tc.want)
		}
	}
}

func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a", "a", true}, {"a", "b", false}, {"a.b", "a", false}, {"a.*", "a.b", true},
		{"a.*", "a.b.c", false}, {"a.>", "a.b.c", true}, {"a.>", "a", false}, {"*.b", "a.*", true},
		{"*.b", "a.c", false}, {">", "x.y", true}, {"a.*.c", "a.b.>", true},
	} {
		if got := overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("overlap(%q, %q) = %v; want %v", tc.a, tc.b, got, tc.want)
		}
		if got := overlap(tc.b, tc.a); got != tc.want {
			t.Errorf("overlap(%q, %q) = %v; want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestLiveDestination(t *testing.T) {
	for p, want := range map[string]string{
		"chat.>":  "rc.stored.chat.>",
		"doc.*.x": "rc.stored.doc.{{wildcard(1)}}.x",
		"*.*":     "rc.stored.{{wildcard(1)}}.{{wildcard(2)}}",
		"lobby":   "rc.stored.lobby",
	} {
		if got := liveDestination("rc.stored.", p); got != want {
			t.Errorf("liveDestination(%q) = %q; want %q", p, got, want)
		}
	}
}

// env is a NATS server, a connection and a started Store.
type env struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *Store
}

func newEnv(t testing.TB, cfg ...Config) *env {
	t.Helper()
	srv := bustest.RunServer(t)
	nc := bustest.Connect(t, srv)
	return startEnv(t, nc, cfg...)
}

func startEnv(t testing.TB, nc *nats.Conn, cfg ...Config) *env {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{NC: nc, JS: js, Config: cfg, CheckInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{nc: nc, js: js, store: s}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// publish sends n messages {"n":i} to room with a JetStream publish, so
// that each is stored when publish returns, and returns their sequences.
func (e *env) publish(t testing.TB, room string, from, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("rc.room." + room)
		m.Header.Set("Rc-Event", "tick")
		m.Data = []byte(`{"n":` + strconv.Itoa(i) + `}`)
		ack, err := e.js.PublishMsg(ctx(t), m)
		if err != nil {
			t.Fatalf("publish %d to %s: %v", i, room, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

func TestStreamCreatedOnceWithLimits(t *testing.T) {
	srv := bustest.RunServer(t)
	nc := bustest.Connect(t, srv)
	e := startEnv(t, nc, Config{Rooms: "chat.>", Size: 7, TTL: time.Minute}, Config{Rooms: "doc.*.x"})
	st := e.store.For("chat.a")
	if st == nil || e.store.For("doc.1.x") == nil || e.store.For("doc.1") != nil || e.store.For("lobby") != nil {
		t.Fatalf("For: chat.a → %v, doc.1.x → %v, doc.1 → %v", st, e.store.For("doc.1.x"), e.store.For("doc.1"))
	}
	s, err := e.js.Stream(ctx(t), st.Name())
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Subjects[0] != "rc.room.chat.>" || c.MaxMsgsPerSubject != 7 || c.MaxAge != time.Minute || !c.AllowDirect ||
		c.RePublish == nil || c.RePublish.Destination != "rc.stored.chat.>" {
		t.Errorf("stream config = %+v", c)
	}
	epoch := st.Epoch()
	if epoch == "" {
		t.Fatal("no epoch after Start")
	}
	// A second node with the same configuration shares the stream.
	e2 := startEnv(t, bustest.Connect(t, srv), Config{Rooms: "chat.>", Size: 7, TTL: time.Minute}, Config{Rooms: "doc.*.x"})
	if got := e2.store.For("chat.a").Epoch(); got != epoch {
		t.Errorf("second node epoch %q; want %q", got, epoch)
	}
	// A node started with a larger size updates the limits, keeping the
	// stream (and its epoch).
	e3 := startEnv(t, bustest.Connect(t, srv), Config{Rooms: "chat.>", Size: 50, TTL: time.Minute}, Config{Rooms: "doc.*.x"})
	s, _ = e3.js.Stream(ctx(t), st.Name())
	if got := s.CachedInfo().Config.MaxMsgsPerSubject; got != 50 {
		t.Errorf("after update MaxMsgsPerSubject = %d; want 50", got)
	}
	if got := e3.store.For("chat.a").Epoch(); got != epoch {
		t.Errorf("epoch changed by an update: %q → %q", epoch, got)
	}
}

func TestOverlappingStreamIsAConfigError(t *testing.T) {
	srv := bustest.RunServer(t)
	nc := bustest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx(t), jetstream.StreamConfig{Name: "other", Subjects: []string{"rc.room.chat.x"}}); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{NC: nc, JS: js, Config: []Config{{Rooms: "chat.>"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "another JetStream stream") {
		t.Fatalf("Start = %v; want an error about another stream", err)
	}
	s.Close()
}

func TestRepublishCarriesSequences(t *testing.T) {
	e := newEnv(t, Config{Rooms: "doc.*.x"})
	sub, err := e.nc.SubscribeSync("rc.stored.>")
	if err != nil {
		t.Fatal(err)
	}
	e.nc.Flush()
	seqs := e.publish(t, "doc.a.x", 0, 2)
	e.publish(t, "doc.b.x", 2, 1)
	seqs = append(seqs, e.publish(t, "doc.a.x", 3, 1)...)
	want := []struct {
		subj      string
		seq, prev uint64
	}{{"rc.stored.doc.a.x", seqs[0], 0}, {"rc.stored.doc.a.x", seqs[1], seqs[0]}, {"rc.stored.doc.b.x", 3, 0}, {"rc.stored.doc.a.x", seqs[2], seqs[1]}}
	for _, w := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		seq, prev, ok := parseLive(m)
		if m.Subject != w.subj || !ok || seq != w.seq || prev != w.prev || m.Header.Get("Rc-Event") != "tick" {
			t.Errorf("got %s seq %d prev %d headers %v; want %s seq %d prev %d", m.Subject, seq, prev, m.Header, w.subj, w.seq, w.prev)
		}
	}
}

// collector records what a feed emits.
type collector struct {
	mu     sync.Mutex
	seqs   []uint64
	ns     []int
	epochs []string
}

func (c *collector) emit(m Msg, epoch string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seqs = append(c.seqs, m.Seq)
	var n int
	fmt.Sscanf(string(m.Data), `{"n":%d}`, &n)
	c.ns = append(c.ns, n)
	c.epochs = append(c.epochs, epoch)
}

func (c *collector) snapshot() ([]uint64, []int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.seqs...), append([]int(nil), c.ns...), append([]string(nil), c.epochs...)
}

// checkRun fails unless ns is exactly from, from+1, …, to-1 and seqs
// strictly increase.
func checkRun(t *testing.T, seqs []uint64, ns []int, from, to int) {
	t.Helper()
	if len(ns) != to-from {
		t.Fatalf("got %d messages %v; want %d (%d..%d)", len(ns), ns, to-from, from, to-1)
	}
	for i, n := range ns {
		if n != from+i {
			t.Fatalf("message %d is n=%d; want %d (all: %v)", i, n, from+i, ns)
		}
		if i > 0 && seqs[i] <= seqs[i-1] {
			t.Fatalf("seq %d after %d", seqs[i], seqs[i-1])
		}
	}
}

// liveFeed subscribes to room's live subject and feeds every message for
// which keep is true into a new feed.
func (e *env) liveFeed(t *testing.T, room string, keep func(i int) bool) (*Feed, *collector) {
	t.Helper()
	c := &collector{}
	f := e.store.For(room).NewFeed(room, c.emit)
	i := 0
	sub, err := e.nc.Subscribe(e.store.LiveSubject(room), func(m *nats.Msg) {
		if keep(i) {
			f.Live(m)
		}
		i++
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	e.nc.Flush()
	return f, c
}

func TestFeedRefillsGaps(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	e.publish(t, "chat.a", -5, 5) // history before the node joined
	// Drop every 7th live message and a run of 20, as NATS does to a slow
	// subscriber.
	f, c := e.liveFeed(t, "chat.a", func(i int) bool { return i%7 != 3 && (i < 40 || i >= 60) })
	var at Position
	if err := f.Attach(ctx(t), func(p Position) { at = p }); err != nil {
		t.Fatal(err)
	}
	if at.Epoch != e.store.For("chat.a").Epoch() || at.Seq != 5 {
		t.Errorf("Attach position %+v; want seq 5 and the stream's epoch", at)
	}
	e.publish(t, "chat.b", 0, 3) // other rooms interleave
	e.publish(t, "chat.a", 0, 100)
	bustest.Eventually(t, 10*time.Second, func() bool { _, ns, _ := c.snapshot(); return len(ns) >= 100 }, "feed emitted fewer than 100")
	seqs, ns, _ := c.snapshot()
	checkRun(t, seqs, ns, 0, 100)
}

func TestFeedDropsWhatAttachCovers(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	c := &collector{}
	f := e.store.For("chat.a").NewFeed("chat.a", c.emit)
	sub, err := e.nc.SubscribeSync(e.store.LiveSubject("chat.a"))
	if err != nil {
		t.Fatal(err)
	}
	e.nc.Flush()
	// Stored before the attach's lookup but arriving after it: the
	// position covers them, so they are not emitted again.
	e.publish(t, "chat.a", 0, 10)
	var at Position
	if err := f.Attach(ctx(t), func(p Position) { at = p }); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "chat.a", 10, 5)
	for range 15 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.Live(m)
	}
	seqs, ns, _ := c.snapshot()
	checkRun(t, seqs, ns, 10, 15)
	if seqs[0] != at.Seq+1 {
		t.Errorf("first emitted seq %d; want the one after the attach position %d", seqs[0], at.Seq)
	}
}

func TestFeedStartsAtFirstLiveMessage(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	e.publish(t, "chat.a", -3, 3)
	// Members that joined without attaching (auto-joined rooms) get what
	// arrives live, from the first message on.
	f, c := e.liveFeed(t, "chat.a", func(int) bool { return true })
	e.publish(t, "chat.a", 0, 10)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := c.snapshot(); return len(ns) == 10 }, "feed emitted fewer than 10")
	var at Position
	if err := f.Attach(ctx(t), func(p Position) { at = p }); err != nil {
		t.Fatal(err)
	}
	seqs, ns, _ := c.snapshot()
	checkRun(t, seqs, ns, 0, 10)
	if at.Seq != seqs[9] {
		t.Errorf("attach position %d; want the last emitted %d", at.Seq, seqs[9])
	}
}

func TestFeedNoticesReset(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	f, c := e.liveFeed(t, "chat.a", func(int) bool { return true })
	if err := f.Attach(ctx(t), func(Position) {}); err != nil {
		t.Fatal(err)
	}
	st := e.store.For("chat.a")
	e.publish(t, "chat.a", 0, 20)
	old := st.Epoch()
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := c.snapshot(); return len(ns) == 20 }, "feed emitted fewer than 20")
	// An operator deletes the stream; the store's check recreates it.
	if err := e.js.DeleteStream(ctx(t), st.Name()); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() bool { return st.Epoch() != old }, "stream not recreated with a new epoch")
	e.publish(t, "chat.a", 20, 3)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := c.snapshot(); return len(ns) == 23 }, "feed emitted fewer than 23")
	seqs, ns, epochs := c.snapshot()
	if ns[20] != 20 || seqs[20] != 1 || epochs[20] != st.Epoch() || epochs[19] != old {
		t.Errorf("after the reset: n=%d seq=%d epoch %q (before: %q); want n=20 seq=1 in epoch %q", ns[20], seqs[20], epochs[20], epochs[19], st.Epoch())
	}
}

func TestReplay(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>", Size: 10})
	st := e.store.For("chat.a")
	seqs := e.publish(t, "chat.a", 0, 5)
	e.publish(t, "chat.b", 0, 2)
	seqs = append(seqs, e.publish(t, "chat.a", 5, 3)...)
	at := Position{Seq: seqs[7], Epoch: st.Epoch()}

	// From a message still stored: everything after it, up to at.
	msgs, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: seqs[2], Epoch: at.Epoch}, Position{Seq: seqs[6], Epoch: at.Epoch})
	if err != nil || !ok || len(msgs) != 4 || msgs[0].Seq != seqs[3] || msgs[3].Seq != seqs[6] {
		t.Errorf("Replay from seq %d = %d msgs, %v, %v; want seqs %v", seqs[2], len(msgs), ok, err, seqs[3:7])
	}
	// Up to date: nothing to replay, recovered.
	if msgs, ok, err := st.Replay(ctx(t), "chat.a", at, at); err != nil || !ok || len(msgs) != 0 {
		t.Errorf("Replay at the position = %d msgs, %v, %v; want none, true", len(msgs), ok, err)
	}
	// From the beginning of a stream that removed nothing.
	if msgs, ok, err := st.Replay(ctx(t), "chat.a", Position{Epoch: at.Epoch}, at); err != nil || !ok || len(msgs) != 8 {
		t.Errorf("Replay since 0 = %d msgs, %v, %v; want 8, true", len(msgs), ok, err)
	}
	// Another epoch, or ahead of the room: not recovered.
	if _, ok, _ := st.Replay(ctx(t), "chat.a", Position{Seq: seqs[2], Epoch: "other"}, at); ok {
		t.Error("Replay from another epoch recovered")
	}
	// Pushed out by size: 12 more messages leave seqs[7] and all before
	// it removed, so a client at seqs[7] cannot be told what it missed.
	more := e.publish(t, "chat.a", 8, 12)
	at = Position{Seq: more[11], Epoch: at.Epoch}
	if msgs, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: seqs[7], Epoch: at.Epoch}, at); err != nil || ok || msgs != nil {
		t.Errorf("Replay past the size = %d msgs, %v, %v; want nothing, false", len(msgs), ok, err)
	}
	// But a client at more[1] still is (more[1] is the oldest kept).
	if msgs, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: more[2], Epoch: at.Epoch}, at); err != nil || !ok || len(msgs) != 9 {
		t.Errorf("Replay from the oldest kept = %d msgs, %v, %v; want 9, true", len(msgs), ok, err)
	}
}

func TestReplayAfterAgeOut(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>", TTL: time.Second})
	st := e.store.For("chat.a")
	seqs := e.publish(t, "chat.a", 0, 3)
	epoch := st.Epoch()
	// A client that saw an empty room (position 0)…
	bustest.Eventually(t, 10*time.Second, func() bool {
		s, err := e.js.Stream(ctx(t), st.Name())
		return err == nil && s.CachedInfo().State.Msgs == 0
	}, "messages did not age out")
	// …and the room got messages that aged out: not recoverable.
	late := e.publish(t, "chat.a", 3, 1)
	if _, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: 0, Epoch: epoch}, Position{Seq: late[0], Epoch: epoch}); err != nil || ok {
		t.Errorf("Replay since 0 after an age-out = %v, %v; want false", ok, err)
	}
	// A client that saw the last aged-out message: also not.
	if _, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: seqs[1], Epoch: epoch}, Position{Seq: late[0], Epoch: epoch}); err != nil || ok {
		t.Errorf("Replay since an aged-out message = %v, %v; want false", ok, err)
	}
	// A client that saw seqs[2] lost nothing: the next stored is late[0]
	// and the stream's first sequence is seqs[2]+1.
	if msgs, ok, err := st.Replay(ctx(t), "chat.a", Position{Seq: seqs[2], Epoch: epoch}, Position{Seq: late[0], Epoch: epoch}); err != nil || !ok || len(msgs) != 1 {
		t.Errorf("Replay since the last aged-out message = %d, %v, %v; want 1, true", len(msgs), ok, err)
	}
}

func TestQuery(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>", Size: 50})
	st := e.store.For("chat.a")
	var seqs []uint64
	for i := range 30 {
		seqs = append(seqs, e.publish(t, "chat.a", i, 1)...)
		e.publish(t, "chat.b", i, 1)
	}
	ns := func(p Page) []int {
		var out []int
		for _, m := range p.Msgs {
			var n int
			fmt.Sscanf(string(m.Data), `{"n":%d}`, &n)
			out = append(out, n)
		}
		return out
	}
	for _, tc := range []struct {
		q    Query
		want string
	}{
		{Query{}, fmt.Sprint(seqRange(0, 30))},
		{Query{Limit: 5}, "[25 26 27 28 29]"},
		{Query{Limit: 5, Before: seqs[10]}, "[5 6 7 8 9]"},
		{Query{Limit: 3, After: seqs[10]}, "[11 12 13]"},
		{Query{After: seqs[10], Before: seqs[14]}, "[11 12 13]"},
		{Query{Limit: 5, Before: seqs[2]}, "[0 1]"},
		{Query{After: seqs[29]}, "[]"},
	} {
		p, err := st.Query(ctx(t), "chat.a", tc.q)
		if err != nil {
			t.Fatalf("Query(%+v): %v", tc.q, err)
		}
		if got := fmt.Sprint(ns(p)); got != tc.want {
			t.Errorf("Query(%+v) = %s; want %s", tc.q, got, tc.want)
		}
		if p.Last != seqs[29] || p.Epoch != st.Epoch() {
			t.Errorf("Query(%+v): last %d epoch %q; want %d %q", tc.q, p.Last, p.Epoch, seqs[29], st.Epoch())
		}
	}
	p, err := st.Query(ctx(t), "chat.none", Query{})
	if err != nil || len(p.Msgs) != 0 || p.Last != 0 {
		t.Errorf("Query of an empty room = %+v, %v", p, err)
	}
}

func seqRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestQueryRetriesNoResponders: a read that reaches no responder, as a node
// sees for a moment while a replicated stream's interest spreads through a
// NATS cluster, is sent again rather than answered unavailable. Here the
// stream is missing until the store's check recreates it.
func TestQueryRetriesNoResponders(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	st := e.store.For("chat.a")
	if err := e.js.DeleteStream(ctx(t), st.Name()); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	p, err := st.Query(ctx(t), "chat.a", Query{})
	if err != nil || len(p.Msgs) != 0 {
		t.Fatalf("Query while the stream is being recreated = %+v, %v; want an empty page", p, err)
	}
	t.Logf("answered after %v", time.Since(begin).Round(time.Millisecond))

	// Gone for good: unavailable once the retries are spent.
	e.store.Close()
	if err := e.js.DeleteStream(ctx(t), st.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Query(ctx(t), "chat.a", Query{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Query of a deleted stream: %v; want ErrUnavailable", err)
	}
}
