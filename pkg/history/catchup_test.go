package history

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
)

// lossyFeed feeds room's live messages into a new feed, except while lose
// is set: those are kept aside, as if NATS had dropped them on the way.
type lossyFeed struct {
	f    *Feed
	c    *collector
	lose atomic.Bool

	mu   sync.Mutex
	lost []*nats.Msg
	seen int // live messages received, lost or not
}

func (e *env) lossyFeed(t *testing.T, room string) *lossyFeed {
	t.Helper()
	l := &lossyFeed{c: &collector{}}
	l.f = e.store.For(room).NewFeed(room, l.c.emit)
	sub, err := e.nc.Subscribe(e.store.LiveSubject(room), func(m *nats.Msg) {
		l.mu.Lock()
		l.seen++
		if l.lose.Load() {
			l.lost = append(l.lost, m)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		l.f.Live(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitSeen waits until n live messages have arrived.
func (l *lossyFeed) waitSeen(t *testing.T, n int) {
	t.Helper()
	bustest.Eventually(t, 5*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.seen >= n
	}, "fewer than %d live messages arrived", n)
}

func (l *lossyFeed) takeLost() []*nats.Msg {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := l.lost
	l.lost = nil
	return lost
}

func catchUpCount(m *Metrics, result string) float64 {
	return counterValue(m.CatchUps.WithLabelValues(result))
}

func TestFeedCatchUpTail(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	m := e.store.m
	l := e.lossyFeed(t, "chat.a")

	// Not ready (no position yet): nothing to catch up from.
	if n, err := l.f.CatchUp(ctx(t)); n != 0 || err != nil {
		t.Fatalf("CatchUp of a feed that is not ready = %d, %v; want 0, nil", n, err)
	}
	if err := l.f.Attach(ctx(t), func(Position) {}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "chat.a", 0, 5)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := l.c.snapshot(); return len(ns) == 5 }, "live messages not emitted")

	// Nothing missing: one lookup, nothing emitted.
	if n, err := l.f.CatchUp(ctx(t)); n != 0 || err != nil {
		t.Fatalf("CatchUp with nothing missing = %d, %v; want 0, nil", n, err)
	}
	if got := catchUpCount(m, "up_to_date"); got != 1 {
		t.Errorf("catch-ups up_to_date = %v; want 1", got)
	}

	// The room's last messages never reach the node, and the room goes
	// quiet: only a catch-up delivers them.
	l.lose.Store(true)
	e.publish(t, "chat.b", 0, 2) // other rooms take sequence numbers in between
	seqs := e.publish(t, "chat.a", 5, 7)
	l.waitSeen(t, 12)
	if n, err := l.f.CatchUp(ctx(t)); n != 7 || err != nil {
		t.Fatalf("CatchUp after losing 7 = %d, %v; want 7, nil", n, err)
	}
	if n, err := l.f.CatchUp(ctx(t)); n != 0 || err != nil {
		t.Fatalf("second CatchUp = %d, %v; want 0, nil", n, err)
	}
	// The lost messages arrive late after all: duplicates, dropped.
	l.lose.Store(false)
	for _, msg := range l.takeLost() {
		l.f.Live(msg)
	}
	e.publish(t, "chat.a", 12, 3)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := l.c.snapshot(); return len(ns) >= 15 }, "live messages after the catch-up not emitted")
	time.Sleep(50 * time.Millisecond) // a duplicate would be emitted now
	got, ns, epochs := l.c.snapshot()
	checkRun(t, got, ns, 0, 15)
	for i, s := range seqs {
		if got[5+i] != s {
			t.Errorf("n=%d emitted with seq %d; stored as %d", 5+i, got[5+i], s)
		}
	}
	for _, ep := range epochs {
		if ep != e.store.For("chat.a").Epoch() {
			t.Fatalf("emitted with epoch %q; want %q", ep, e.store.For("chat.a").Epoch())
		}
	}
	if got, msgs := catchUpCount(m, "caught_up"), counterValue(m.CaughtUp); got != 1 || msgs != 7 {
		t.Errorf("catch-ups caught_up = %v, messages %v; want 1, 7", got, msgs)
	}
}

// TestFeedCatchUpReset: the stream was deleted and recreated while the
// node was not listening; the catch-up starts the feed over in the new
// stream.
func TestFeedCatchUpReset(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>"})
	st := e.store.For("chat.a")
	l := e.lossyFeed(t, "chat.a")
	if err := l.f.Attach(ctx(t), func(Position) {}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "chat.a", 0, 20)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := l.c.snapshot(); return len(ns) == 20 }, "live messages not emitted")
	old := st.Epoch()

	l.lose.Store(true)
	if err := e.js.DeleteStream(ctx(t), st.Name()); err != nil {
		t.Fatal(err)
	}
	// The store's check recreates it.
	bustest.Eventually(t, 10*time.Second, func() bool { return st.Epoch() != old }, "stream not recreated with a new epoch")
	if err := st.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	seqs := e.publish(t, "chat.a", 20, 3)
	l.waitSeen(t, 23)
	if n, err := l.f.CatchUp(ctx(t)); n != 3 || err != nil {
		t.Fatalf("CatchUp after a reset = %d, %v; want 3, nil", n, err)
	}
	l.lose.Store(false)
	e.publish(t, "chat.a", 23, 1)
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := l.c.snapshot(); return len(ns) >= 24 }, "live message after the catch-up not emitted")
	time.Sleep(50 * time.Millisecond)
	got, ns, epochs := l.c.snapshot()
	if len(ns) != 24 {
		t.Fatalf("emitted %v; want n=0..23", ns)
	}
	for i := 20; i < 24; i++ {
		if ns[i] != i || epochs[i] != st.Epoch() {
			t.Fatalf("message %d: n=%d epoch %q; want n=%d in the new epoch %q", i, ns[i], epochs[i], i, st.Epoch())
		}
	}
	if got[20] != seqs[0] || seqs[0] != 1 || epochs[19] != old {
		t.Errorf("first message of the new stream: seq %d (stored as %d), epoch before it %q; want seq 1 after epoch %q", got[20], seqs[0], epochs[19], old)
	}
}

// TestFeedCatchUpConcurrent runs catch-ups while the room is busy and its
// live messages are lost now and then: every message is emitted once, in
// order, whichever of live delivery, refill and catch-up gets it first.
func TestFeedCatchUpConcurrent(t *testing.T) {
	e := newEnv(t, Config{Rooms: "chat.>", Size: 10000})
	c := &collector{}
	f := e.store.For("chat.a").NewFeed("chat.a", c.emit)
	i := 0
	sub, err := e.nc.Subscribe(e.store.LiveSubject("chat.a"), func(m *nats.Msg) {
		if i%5 != 2 && i%97 > 10 {
			f.Live(m)
		}
		i++
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	e.nc.Flush()
	if err := f.Attach(ctx(t), func(Position) {}); err != nil {
		t.Fatal(err)
	}
	const total = 600
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var caught atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := f.CatchUp(ctx(t))
			if err != nil {
				t.Error(err)
				return
			}
			caught.Add(int64(n))
		}
	}()
	e.publish(t, "chat.a", 0, total)
	close(stop)
	wg.Wait()
	// The last messages may have been lost with nothing after them.
	n, err := f.CatchUp(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	caught.Add(int64(n))
	bustest.Eventually(t, 5*time.Second, func() bool { _, ns, _ := c.snapshot(); return len(ns) >= total }, "fewer than %d emitted", total)
	time.Sleep(50 * time.Millisecond)
	seqs, ns, _ := c.snapshot()
	checkRun(t, seqs, ns, 0, total)
	t.Logf("catch-ups delivered %d of %d messages", caught.Load(), total)
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var d dto.Metric
	_ = c.Write(&d)
	return d.GetCounter().GetValue()
}
