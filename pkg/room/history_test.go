package room

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/history"
)

// historyStore starts a history Store on srv for cfg.
func historyStore(t testing.TB, srv *server.Server, m *history.Metrics, cfg ...history.Config) *history.Store {
	t.Helper()
	nc := bustest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := history.New(history.Options{NC: nc, JS: js, Config: cfg, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func historyHub(t testing.TB, srv *server.Server, st *history.Store, edit func(o *Options)) *Hub {
	t.Helper()
	return startHub(t, srv, "n1", func(o *Options) {
		o.History = st
		o.RateLimit.PerSecond = -1
		if edit != nil {
			edit(o)
		}
	})
}

// publishN publishes {"n":i} for i in [from, from+n) to room over NATS, as a
// back-end would.
func publishN(t testing.TB, nc *nats.Conn, room string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("rc.room." + room)
		m.Header.Set(HeaderEvent, "tick")
		m.Data = []byte(`{"n":` + strconv.Itoa(i) + `}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// ticks returns the n of every tick event of room in msgs, and their seqs.
func ticks(msgs []map[string]any, room string) (ns []int, seqs []uint64) {
	for _, m := range msgs {
		if m["type"] != "event" || m["room"] != room || m["event"] != "tick" {
			continue
		}
		ns = append(ns, int(m["data"].(map[string]any)["n"].(float64)))
		seq, _ := m["seq"].(float64)
		seqs = append(seqs, uint64(seq))
	}
	return ns, seqs
}

// checkTicks fails unless ns is from..to-1 exactly and seqs increase.
func checkTicks(t *testing.T, ns []int, seqs []uint64, from, to int) {
	t.Helper()
	if len(ns) != to-from {
		t.Fatalf("got %d ticks, want %d (%d..%d): %v", len(ns), to-from, from, to-1, ns)
	}
	for i := range ns {
		if ns[i] != from+i {
			t.Fatalf("tick %d is n=%d, want %d: %v", i, ns[i], from+i, ns)
		}
		if i > 0 && seqs[i] <= seqs[i-1] {
			t.Fatalf("seq %d after %d", seqs[i], seqs[i-1])
		}
	}
}

func TestHistoryEventsCarrySeqAndEpoch(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>"})
	h := historyHub(t, srv, st, nil)
	s, rec := open(t, h, Identity{User: "ada", Allow: allowAll()})
	epoch := st.For("chat.a").Epoch()

	send(s, `{"type":"join","room":"chat.a","id":1}`)
	ack := rec.expect(t, "ack")
	if ack["seq"] != 0.0 || ack["epoch"] != epoch || ack["recovered"] != nil {
		t.Errorf("ack = %v; want seq 0, epoch %q, no recovered", ack, epoch)
	}
	rec.expect(t, "session:list")
	send(s, `{"type":"publish","room":"chat.a","event":"hi","data":{"x":1},"id":2}`)
	ev := rec.find(t, "event", func(m map[string]any) bool { return m["type"] == "event" })
	if ev["seq"] != 1.0 || ev["epoch"] != epoch || ev["from"] != s.ID() || ev["event"] != "hi" {
		t.Errorf("event = %v; want seq 1, epoch %q, from %s", ev, epoch, s.ID())
	}

	// Rooms without history are unchanged; since there is answered with
	// recovered:false.
	send(s, `{"type":"join","room":"lobby","id":3,"since":{"seq":4,"epoch":"x"}}`)
	ack = rec.find(t, "ack 3", func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == 3.0 })
	if ack["recovered"] != false || ack["seq"] != nil {
		t.Errorf("ack for a room without history = %v; want recovered false and no seq", ack)
	}
	send(s, `{"type":"publish","room":"lobby","event":"hi","data":1}`)
	ev = rec.find(t, "lobby event", func(m map[string]any) bool { return m["type"] == "event" && m["room"] == "lobby" })
	if _, ok := ev["seq"]; ok {
		t.Errorf("event of a room without history has seq: %v", ev)
	}
}

// TestHistoryJoinSinceSeam joins with since while a publisher keeps going:
// the joiner gets every message after since exactly once, in order, across
// the seam between replay and live.
func TestHistoryJoinSinceSeam(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>", Size: 10000})
	h := historyHub(t, srv, st, nil)
	pub := bustest.Connect(t, srv)
	watcher, wrec := open(t, h, Identity{User: "w", Allow: allowAll()})
	send(watcher, `{"type":"join","room":"chat.a","id":1}`)
	wrec.expect(t, "ack")

	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 30 {
			publishN(t, pub, "chat.a", i, 30)
			time.Sleep(time.Millisecond)
		}
	}()
	// Wait until the watcher saw message 500, then join with its seq of
	// message 200 as since, mid-stream, several times.
	var since []uint64
	bustest.Eventually(t, 10*time.Second, func() bool {
		ns, seqs := ticks(wrec.all(), "chat.a")
		if len(ns) > 500 {
			since = seqs
			return true
		}
		return false
	}, "watcher got fewer than 500")
	epoch := st.For("chat.a").Epoch()
	var recs []*recorder
	for i, from := range []int{200, 350, 499} {
		s, rec := open(t, h, Identity{User: "j" + strconv.Itoa(i), Allow: allowAll()})
		send(s, fmt.Sprintf(`{"type":"join","room":"chat.a","id":1,"since":{"seq":%d,"epoch":%q}}`, since[from], epoch))
		ack := rec.expect(t, "ack")
		if ack["recovered"] != true {
			t.Fatalf("join since n=%d: ack %v; want recovered", from, ack)
		}
		recs = append(recs, rec)
	}
	wg.Wait()
	for i, from := range []int{200, 350, 499} {
		rec := recs[i]
		bustest.Eventually(t, 10*time.Second, func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) >= total-from-1 },
			"joiner %d got too few", i)
		time.Sleep(50 * time.Millisecond) // a duplicate would arrive now
		ns, seqs := ticks(rec.all(), "chat.a")
		checkTicks(t, ns, seqs, from+1, total)
	}
	ns, seqs := ticks(wrec.all(), "chat.a")
	checkTicks(t, ns, seqs, 0, total)
}

func TestHistoryNotRecovered(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>", Size: 10})
	h := historyHub(t, srv, st, nil)
	pub := bustest.Connect(t, srv)
	s, rec := open(t, h, Identity{User: "a", Allow: allowAll()})
	send(s, `{"type":"join","room":"chat.a","id":1}`)
	rec.expect(t, "ack")
	publishN(t, pub, "chat.a", 0, 3)
	bustest.Eventually(t, 5*time.Second, func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) == 3 }, "n=0..2 not delivered")
	_, seqs := ticks(rec.all(), "chat.a")
	epoch := st.For("chat.a").Epoch()
	publishN(t, pub, "chat.a", 3, 20) // pushes seqs[0] out of the 10 kept
	bustest.Eventually(t, 5*time.Second, func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) == 23 }, "n=22 not delivered")

	s2, rec2 := open(t, h, Identity{User: "b", Allow: allowAll()})
	send(s2, fmt.Sprintf(`{"type":"join","room":"chat.a","id":1,"since":{"seq":%d,"epoch":%q}}`, seqs[0], epoch))
	ack := rec2.expect(t, "ack")
	if ack["recovered"] != false || ack["epoch"] != epoch || ack["seq"].(float64) < float64(seqs[0]) {
		t.Errorf("ack %v; want recovered false with the room's position", ack)
	}
	rec2.expect(t, "session:list")
	publishN(t, pub, "chat.a", 23, 1)
	ev := rec2.findType(t, "event")
	if n := ev["data"].(map[string]any)["n"]; n != 23.0 {
		t.Errorf("first event after recovered:false is n=%v; want 23 (no replay)", n)
	}
	// Another epoch: not recovered either.
	s3, rec3 := open(t, h, Identity{User: "c", Allow: allowAll()})
	send(s3, fmt.Sprintf(`{"type":"join","room":"chat.a","id":1,"since":{"seq":%d,"epoch":"old"}}`, seqs[2]))
	if ack := rec3.expect(t, "ack"); ack["recovered"] != false {
		t.Errorf("ack for another epoch %v; want recovered false", ack)
	}
	// A bad since is a bad request.
	send(s3, `{"type":"join","room":"chat.b","id":2,"since":5}`)
	if e := rec3.find(t, "error", func(m map[string]any) bool { return m["type"] == "error" }); e["code"] != CodeBadRequest {
		t.Errorf("since:5 → %v; want bad_request", e)
	}
}

// slowConn makes the fan-out slow, so that a small shard queue overflows
// and NATS drops messages on their way to the node.
type slowConn struct{ recorder }

func (c *slowConn) Send(f *frame.Prepared) error {
	time.Sleep(200 * time.Microsecond)
	return c.recorder.Send(f)
}

func TestHistoryGapRefill(t *testing.T) {
	srv := bustest.RunServer(t)
	m := history.NewMetrics(nil)
	st := historyStore(t, srv, m, history.Config{Rooms: "chat.>", Size: 10000})
	h := historyHub(t, srv, st, func(o *Options) {
		o.Shards, o.ShardQueue = 1, 2
		// A connection that does not print every slow-consumer drop.
		o.NC = bustest.Connect(t, srv, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	})
	pub := bustest.Connect(t, srv)
	rec := &slowConn{}
	s := h.Open(Identity{User: "a", Allow: allowAll()}, rec)
	rec.session.Store(s)
	rec.expect(t, "welcome")
	send(s, `{"type":"join","room":"chat.a","id":1}`)
	rec.expect(t, "ack")
	const total = 1001
	publishN(t, pub, "chat.a", 0, total-1)
	// Messages dropped last are noticed by the next one, once the burst
	// is stored and republished.
	bustest.Eventually(t, 20*time.Second, func() bool {
		p, err := st.For("chat.a").Query(context.Background(), "chat.a", history.Query{Limit: 1})
		return err == nil && len(p.Msgs) == 1 && string(p.Msgs[0].Data) == fmt.Sprintf(`{"n":%d}`, total-2)
	}, "burst not stored")
	// A gap at the tail of a burst is noticed when the room's next message
	// arrives (pkg/history/doc.go). On a loaded machine the shard may still
	// be busy when that message comes, so it is dropped too: keep adding
	// one message every 300 ms until the member has caught up to it.
	next := total - 1
	deadline := time.Now().Add(20 * time.Second)
	for {
		publishN(t, pub, "chat.a", next, 1)
		next++
		caught := func() bool { ns, _ := ticks(rec.all(), "chat.a"); return len(ns) >= next }
		for w := time.Now().Add(300 * time.Millisecond); time.Now().Before(w) && !caught(); {
			time.Sleep(10 * time.Millisecond)
		}
		if caught() {
			break
		}
		if time.Now().After(deadline) {
			ns, _ := ticks(rec.all(), "chat.a")
			t.Fatalf("member got %d of %d: %d dropped by NATS, %v refills, %v failed", len(ns), next,
				h.Dropped(), counterValue(m.Refills), counterValue(m.RefillFailures))
		}
	}
	ns, seqs := ticks(rec.all(), "chat.a")
	checkTicks(t, ns, seqs, 0, next)
	if h.Dropped() == 0 || counterValue(m.Refills) == 0 {
		t.Errorf("dropped %d, refills %v: the test did not make a gap", h.Dropped(), counterValue(m.Refills))
	}
	t.Logf("NATS dropped %d messages to the node; %v refills delivered %v", h.Dropped(), counterValue(m.Refills), counterValue(m.Refilled))
}

func TestHistoryMessage(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>"})
	h := historyHub(t, srv, st, nil)
	pub := bustest.Connect(t, srv)
	publishN(t, pub, "chat.a", 0, 30)
	bustest.Eventually(t, 5*time.Second, func() bool {
		p, err := st.For("chat.a").Query(context.Background(), "chat.a", history.Query{})
		return err == nil && len(p.Msgs) == 30
	}, "messages not stored")
	s, rec := open(t, h, Identity{User: "a", Allow: allowAll()})
	send(s, `{"type":"history","room":"chat.a","id":7,"limit":5}`)
	m := rec.expect(t, "history")
	events := m["events"].([]any)
	if m["id"] != 7.0 || m["room"] != "chat.a" || m["epoch"] != st.For("chat.a").Epoch() || len(events) != 5 {
		t.Fatalf("history = %v", m)
	}
	first := events[0].(map[string]any)
	if first["data"].(map[string]any)["n"] != 25.0 || first["event"] != "tick" || first["time"] == nil || m["seq"] != events[4].(map[string]any)["seq"] {
		t.Errorf("history events = %v", events)
	}
	before := first["seq"].(float64)
	send(s, fmt.Sprintf(`{"type":"history","room":"chat.a","id":8,"limit":2,"before":%d}`, int(before)))
	m = rec.expect(t, "history")
	if got := fmt.Sprint(m["events"].([]any)[0].(map[string]any)["data"]); got != "map[n:23]" {
		t.Errorf("page before = %v", m["events"])
	}

	s2, rec2 := open(t, h, Identity{User: "b", Rooms: []string{"lobby"}})
	send(s2, `{"type":"history","room":"chat.a","id":1}`)
	if e := rec2.find(t, "error", func(m map[string]any) bool { return m["type"] == "error" }); e["code"] != CodeForbidden {
		t.Errorf("history of a room not allowed → %v; want forbidden", e)
	}
	send(s2, `{"type":"history","room":"lobby","id":2}`)
	if e := rec2.find(t, "error", func(m map[string]any) bool { return m["type"] == "error" }); e["code"] != CodeNotFound {
		t.Errorf("history of a room without history → %v; want not_found", e)
	}

	// Back-ends: rc.history.<room>.
	if err := h.ServeHistory(); err != nil {
		t.Fatal(err)
	}
	resp, err := pub.Request("rc.history.chat.a", []byte(`{"limit":3,"after":`+strconv.Itoa(int(before))+`}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Room   string
		Seq    uint64
		Epoch  string
		Events []struct {
			Seq  uint64
			Data struct{ N int }
		}
	}
	if err := json.Unmarshal(resp.Data, &page); err != nil {
		t.Fatalf("%s: %v", resp.Data, err)
	}
	if page.Room != "chat.a" || len(page.Events) != 3 || page.Events[0].Data.N != 26 || page.Epoch == "" {
		t.Errorf("rc.history answer %s", resp.Data)
	}
	resp, err = pub.Request("rc.history.lobby", nil, 5*time.Second)
	if err != nil || string(resp.Data) != `{"error":{"code":"not_found","message":"room \"lobby\" keeps no history"}}` {
		t.Errorf("rc.history.lobby → %s, %v", resp.Data, err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestHistoryJoinAheadOfNode: a client that saw more on another node than
// this node has delivered yet gets nothing twice.
func TestHistoryJoinAheadOfNode(t *testing.T) {
	srv := bustest.RunServer(t)
	st := historyStore(t, srv, nil, history.Config{Rooms: "chat.>", Size: 10000})
	fast := historyHub(t, srv, st, nil)
	slow := startHub(t, srv, "n2", func(o *Options) { o.History = st; o.RateLimit.PerSecond = -1; o.Shards = 1 })
	pub := bustest.Connect(t, srv)

	a, arec := open(t, fast, Identity{User: "a", Allow: allowAll()})
	send(a, `{"type":"join","room":"chat.a","id":1}`)
	arec.expect(t, "ack")
	// A slow member keeps n2's fan-out for the room behind.
	lag := &slowConn{}
	ls := slow.Open(Identity{User: "lag", Allow: allowAll()}, lag)
	lag.session.Store(ls)
	lag.expect(t, "welcome")
	send(ls, `{"type":"join","room":"chat.a","id":1}`)
	lag.expect(t, "ack")

	publishN(t, pub, "chat.a", 0, 300)
	bustest.Eventually(t, 10*time.Second, func() bool { ns, _ := ticks(arec.all(), "chat.a"); return len(ns) == 300 }, "fast node behind")
	ns, _ := ticks(lag.all(), "chat.a")
	if len(ns) > 250 {
		t.Skipf("the slow node kept up (%d of 300): no lag to test", len(ns))
	}
	_, aseqs := ticks(arec.all(), "chat.a")
	since := aseqs[289] // the client saw up to n=289 on the fast node
	b, brec := open(t, slow, Identity{User: "b", Allow: allowAll()})
	send(b, fmt.Sprintf(`{"type":"join","room":"chat.a","id":1,"since":{"seq":%d,"epoch":%q}}`, since, st.For("chat.a").Epoch()))
	ack := brec.expect(t, "ack")
	if ack["recovered"] != true || ack["seq"].(float64) >= float64(since) {
		t.Fatalf("ack %v; want recovered, at a position below %d (the node lags, %d delivered)", ack, since, len(ns))
	}
	publishN(t, pub, "chat.a", 300, 5)
	bustest.Eventually(t, 20*time.Second, func() bool { ns, _ := ticks(brec.all(), "chat.a"); return len(ns) >= 15 }, "joiner got too few")
	time.Sleep(50 * time.Millisecond)
	ns, seqs := ticks(brec.all(), "chat.a")
	checkTicks(t, ns, seqs, 290, 305)
}
