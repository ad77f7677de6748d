package history_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/names"
	"github.com/roomcast/roomcast/pkg/room"
)

// The cost of history, end to end on one machine: a back-end publishes to
// rc.room.bench.room over NATS; a node (room.Hub, real NATS and JetStream,
// file storage) delivers every message to the room's local members. With
// history each message is also stored, republished with its sequence, and
// passed through the room's Feed; events carry seq and epoch.
//
//	go test -run '^$' -bench Throughput -benchtime 20000x ./pkg/history
//
// msg/s is what one node delivers to the room (each message reaching every
// member); the publisher keeps at most `window` messages in flight, so the
// number is a sustained rate, not a burst into buffers.

const (
	benchRoom    = "bench.room"
	benchMembers = 10
	window       = 1000
)

// countConn counts the frames the Hub queues for one member.
type countConn struct{ n atomic.Int64 }

func (c *countConn) Send(*frame.Prepared) error { c.n.Add(1); return nil }
func (c *countConn) Close(uint16, string)       {}

func BenchmarkThroughput(b *testing.B) {
	for _, withHistory := range []bool{false, true} {
		name := "plain"
		if withHistory {
			name = "history"
		}
		b.Run(name, func(b *testing.B) { benchThroughput(b, withHistory) })
	}
}

func startStore(b *testing.B, srv *server.Server, cfg history.Config) *history.Store {
	b.Helper()
	nc := bustest.Connect(b, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	st, err := history.New(history.Options{NC: nc, JS: js, Config: []history.Config{cfg}})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	return st
}

func benchThroughput(b *testing.B, withHistory bool) {
	srv := bustest.RunServer(b)
	var st *history.Store
	if withHistory {
		st = startStore(b, srv, history.Config{Rooms: "bench.>", Size: 1_000_000, TTL: time.Hour})
	}
	h, err := room.New(room.Options{Node: "n1", NC: bustest.Connect(b, srv), History: st,
		RateLimit: room.RateLimit{PerSecond: -1}})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	conns := make([]*countConn, benchMembers)
	for i := range conns {
		conns[i] = &countConn{}
		s := h.Open(room.Identity{User: "u" + strconv.Itoa(i), Allow: names.All()}, conns[i])
		s.Receive([]byte(`{"type":"join","room":"` + benchRoom + `","id":1}`))
	}
	// welcome, ack, list, and session:connected of later joiners.
	bustest.Eventually(b, 10*time.Second, func() bool { return conns[benchMembers-1].n.Load() >= 3 }, "joins not answered")
	time.Sleep(100 * time.Millisecond)
	base := make([]int64, benchMembers)
	for i, c := range conns {
		base[i] = c.n.Load()
	}
	delivered := func() int64 { // by the slowest member
		least := int64(-1)
		for i, c := range conns {
			if n := c.n.Load() - base[i]; least < 0 || n < least {
				least = n
			}
		}
		return least
	}
	pub := bustest.Connect(b, srv)
	msg := nats.NewMsg("rc.room." + benchRoom)
	msg.Header.Set(room.HeaderEvent, "tick")
	msg.Data = []byte(`{"text":"a message of about a hundred bytes, as chat messages go","n":12345,"user":"someone"}`)

	// Warm up: the stream's first block, the connections' buffers.
	for range 2000 {
		if err := pub.PublishMsg(msg); err != nil {
			b.Fatal(err)
		}
	}
	bustest.Eventually(b, 30*time.Second, func() bool { return delivered() >= 2000 }, "warm-up not delivered")
	for i, c := range conns {
		base[i] = c.n.Load()
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := pub.PublishMsg(msg); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			for int64(i)-delivered() > window {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for delivered() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", delivered(), b.N)
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(b.N*benchMembers)/elapsed.Seconds(), "deliveries/s")
	if h.Dropped() > 0 {
		b.Logf("NATS dropped %d messages to the node (refilled from the stream with history)", h.Dropped())
	}
}

// BenchmarkReplay is the JetStream side of a recovery: reading the
// messages a client missed (Stream.Replay) in a room of a busy stream.
func BenchmarkReplay(b *testing.B) {
	for _, missed := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("missed=%d", missed), func(b *testing.B) {
			srv := bustest.RunServer(b)
			st := startStore(b, srv, history.Config{Rooms: "bench.>", Size: 100_000, TTL: time.Hour})
			nc := bustest.Connect(b, srv)
			js, _ := jetstream.New(nc)
			var seqs []uint64
			for i := 0; i < missed+1; i++ {
				// Another room in between, as in a stream shared by rooms.
				if _, err := js.Publish(context.Background(), "rc.room.bench.other", []byte(`{"n":0}`)); err != nil {
					b.Fatal(err)
				}
				ack, err := js.Publish(context.Background(), "rc.room."+benchRoom, []byte(`{"text":"a message of about a hundred bytes, as chat messages go","n":1}`))
				if err != nil {
					b.Fatal(err)
				}
				seqs = append(seqs, ack.Sequence)
			}
			s := st.For(benchRoom)
			since := history.Position{Seq: seqs[0], Epoch: s.Epoch()}
			at := history.Position{Seq: seqs[missed], Epoch: s.Epoch()}
			b.ResetTimer()
			for b.Loop() {
				msgs, ok, err := s.Replay(context.Background(), benchRoom, since, at)
				if err != nil || !ok || len(msgs) != missed {
					b.Fatalf("Replay = %d msgs, %v, %v", len(msgs), ok, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(missed), "µs/msg")
		})
	}
}
