package room

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/history"
)

// storeN publishes {"n":i} for i in [from, from+n) to room with JetStream
// publishes, so that each is stored when storeN returns, and returns their
// sequences.
func storeN(t testing.TB, js jetstream.JetStream, room string, from, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("rc.room." + room)
		m.Header.Set(HeaderEvent, "tick")
		m.Data = []byte(`{"n":` + strconv.Itoa(i) + `}`)
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatalf("publish %d to %s: %v", i, room, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

// TestHistoryCatchUpAfterReconnect: messages published while a node's NATS
// link is down are stored but never reach the node. Once it is back, its
// members get them, in order, with no later message to reveal the gap.
func TestHistoryCatchUpAfterReconnect(t *testing.T) {
	srv := bustest.RunServer(t)
	px := bustest.NewProxy(t, srv.Addr().String())
	// The node's one connection, as in pkg/node: the hub and the history
	// store share it, and both lose the link.
	nc, err := nats.Connect(px.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectBufSize(-1), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m := history.NewMetrics(nil)
	st, err := history.New(history.Options{NC: nc, JS: js, Config: []history.Config{{Rooms: "chat.>"}}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	h := historyHub(t, srv, st, func(o *Options) { o.NC = nc })
	nc.SetReconnectHandler(func(*nats.Conn) { h.CatchUp() })

	pubJS, err := jetstream.New(bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, h, Identity{User: "a", Allow: allowAll()})
	send(s, `{"type":"join","room":"chat.a","id":1}`)
	rec.expect(t, "ack")
	// Another member in 50 more rooms, of which 5 lose messages.
	many, mrec := open(t, h, Identity{User: "m", Allow: allowAll()})
	for i := range 50 {
		send(many, fmt.Sprintf(`{"type":"join","room":"chat.r%d","id":%d}`, i, i+1))
		mrec.expect(t, "ack")
		mrec.expect(t, "session:list")
	}
	seqs := storeN(t, pubJS, "chat.a", 0, 3)
	bustest.Eventually(t, 5*time.Second, func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) == 3 }, "live messages not delivered")

	px.Cut()
	bustest.Eventually(t, 5*time.Second, func() bool { return !nc.IsConnected() }, "node still connected after the cut")
	const lost = 20
	seqs = append(seqs, storeN(t, pubJS, "chat.a", 3, lost)...)
	for i := 0; i < 50; i += 10 {
		storeN(t, pubJS, fmt.Sprintf("chat.r%d", i), 0, 4)
	}
	px.Heal()

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ns, _ := ticks(rec.all(), "chat.a")
		if len(ns) >= 3+lost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member got %d of %d messages after the reconnect (nothing was published after it); reconnected: %v",
				len(ns), 3+lost, nc.IsConnected())
		}
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	ns, got := ticks(rec.all(), "chat.a")
	checkTicks(t, ns, got, 0, 3+lost)
	for i := range seqs {
		if got[i] != seqs[i] {
			t.Fatalf("message n=%d has seq %d; stored as %d", i, got[i], seqs[i])
		}
	}
	for i := 0; i < 50; i += 10 {
		room := fmt.Sprintf("chat.r%d", i)
		bustest.Eventually(t, 5*time.Second, func() bool { ns, _ := ticks(mrec.all(), room); return len(ns) >= 4 }, "%s: its lost messages not caught up", room)
	}
	for i := 0; i < 50; i++ {
		room := fmt.Sprintf("chat.r%d", i)
		ns, got := ticks(mrec.all(), room)
		if i%10 == 0 {
			checkTicks(t, ns, got, 0, 4)
		} else if len(ns) != 0 {
			t.Errorf("%s lost nothing, yet its member got %v", room, ns)
		}
	}
	if n := counterValue(m.CaughtUp); n != lost+4*5 {
		t.Errorf("catch-ups delivered %v messages; want %d", n, lost+4*5)
	}
}

// TestHistoryCatchUpAfterSlowConsumer: a burst overflows the node's fan-out
// and NATS drops messages on their way to it, the last ones included; the
// room then goes quiet. The slow-consumer error asks for a catch-up, which
// delivers the lost tail with no later message to reveal it.
func TestHistoryCatchUpAfterSlowConsumer(t *testing.T) {
	srv := bustest.RunServer(t)
	m := history.NewMetrics(nil)
	st := historyStore(t, srv, m, history.Config{Rooms: "chat.>", Size: 10000})
	nc := bustest.Connect(t, srv)
	h := historyHub(t, srv, st, func(o *Options) { o.Shards, o.ShardQueue, o.NC = 1, 2, nc })
	// What pkg/node wires through bus.Handlers.
	nc.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if _, ok := st.RoomFromLive(sub.Subject); ok && errors.Is(err, nats.ErrSlowConsumer) {
			h.CatchUp()
		}
	})
	pub := bustest.Connect(t, srv)
	rec := &slowConn{}
	s := h.Open(Identity{User: "a", Allow: allowAll()}, rec)
	rec.session.Store(s)
	rec.expect(t, "welcome")
	send(s, `{"type":"join","room":"chat.a","id":1}`)
	rec.expect(t, "ack")
	const total = 500
	publishN(t, pub, "chat.a", 0, total)
	bustest.Eventually(t, 20*time.Second, func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) >= total },
		"the member got fewer than %d messages (nothing was published after the burst)", total)
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	ns, seqs := ticks(rec.all(), "chat.a")
	checkTicks(t, ns, seqs, 0, total)
	if h.Dropped() == 0 {
		t.Skip("NATS dropped nothing on the way to the node: no loss to catch up")
	}
	t.Logf("NATS dropped %d; refills delivered %v, catch-ups %v", h.Dropped(), counterValue(m.Refilled), counterValue(m.CaughtUp))
}

// TestRunPasses: requests during the delay join the pending pass, requests
// during a pass make exactly one more, and a pass asking for a retry runs
// again.
func TestRunPasses(t *testing.T) {
	done := make(chan struct{})
	sig := make(chan struct{}, 1)
	started := make(chan struct{})
	release := make(chan bool) // the pass's answer: retry?
	finished := make(chan struct{})
	go func() {
		runPasses(done, sig, 20*time.Millisecond, 20*time.Millisecond, func() bool {
			started <- struct{}{}
			return <-release
		})
		close(finished)
	}()
	ask := func(n int) {
		for range n {
			select {
			case sig <- struct{}{}:
			default:
			}
		}
	}
	expectPass := func(what string) {
		t.Helper()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("no pass %s", what)
		}
	}
	expectNone := func(what string) {
		t.Helper()
		select {
		case <-started:
			t.Fatalf("a pass %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}

	ask(1)
	ask(50) // during the delay (or fills sig while the first is taken)
	expectPass("after a request")
	ask(50) // during the pass
	release <- false
	expectPass("after requests during a pass")
	release <- false
	expectNone("without a request")

	// Retries: catchUpRetries more passes, then none.
	ask(1)
	expectPass("after a request")
	release <- true
	for i := range catchUpRetries {
		expectPass(fmt.Sprintf("retry %d", i+1))
		release <- true
	}
	expectNone("after the retries ran out")

	close(done)
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("runPasses did not return after done")
	}
}

// BenchmarkCatchUpPass measures a catch-up pass over 1,000 history rooms
// with local members and nothing missing: one direct get per room,
// catchUpWorkers at a time, plus one stream lookup.
func BenchmarkCatchUpPass(b *testing.B) {
	const rooms = 1000
	srv := bustest.RunServer(b)
	m := history.NewMetrics(nil)
	st := historyStore(b, srv, m, history.Config{Rooms: "chat.>"})
	h := historyHub(b, srv, st, func(o *Options) { o.MaxRoomsPerSession = rooms })
	js, err := jetstream.New(bustest.Connect(b, srv))
	if err != nil {
		b.Fatal(err)
	}
	rec := &recorder{}
	s := h.Open(Identity{User: "a", Allow: allowAll()}, rec)
	rec.session.Store(s)
	for i := range rooms {
		room := "chat.r" + strconv.Itoa(i)
		storeN(b, js, room, 0, 1) // the direct get finds a message
		send(s, `{"type":"join","room":"`+room+`","id":1}`)
	}
	if h.Rooms() != rooms {
		b.Fatalf("%d rooms; want %d", h.Rooms(), rooms)
	}
	b.ResetTimer()
	for b.Loop() {
		if res := h.catchUpPass(context.Background()); res.rooms != rooms || res.msgs != 0 || res.failed != 0 {
			b.Fatalf("pass: %+v", res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/rooms, "µs/room")
}

// TestCatchUpPassStreamDown: with JetStream gone, a pass costs one stream
// lookup (here it times out), not a timeout per room, and reports the
// rooms as failed so that it is retried.
func TestCatchUpPassStreamDown(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>"})
	h := historyHub(t, srv, st, nil)
	s, rec := open(t, h, Identity{User: "a", Allow: allowAll()})
	const rooms = 20
	for i := range rooms {
		send(s, fmt.Sprintf(`{"type":"join","room":"chat.r%d","id":%d}`, i, i+1))
		rec.expect(t, "ack")
		rec.expect(t, "session:list")
	}
	if res := h.catchUpPass(context.Background()); res.rooms != rooms || res.failed != 0 {
		t.Fatalf("pass with JetStream up: %+v", res)
	}
	if err := srv.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	res := h.catchUpPass(context.Background())
	if res.rooms != rooms || res.failed != rooms || res.took > catchUpLookupTimeout+time.Second {
		t.Fatalf("pass with JetStream down: %+v; want all %d rooms failed after one stream lookup", res, rooms)
	}
	t.Logf("pass with JetStream down: %v", res.took)
}
