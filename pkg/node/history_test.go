package node

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// TestHistoryCatchUpAfterReconnect: a node loses its NATS link while the
// last messages of a history room are published; once it is back, its
// member gets them, with their seq, although nothing else is published.
func TestHistoryCatchUpAfterReconnect(t *testing.T) {
	srv := bustest.RunServer(t)
	px := bustest.NewProxy(t, srv.Addr().String())
	_, base, _ := startNode(t, func(o *Options) {
		o.NATS = px.URL()
		o.History = []History{{Rooms: "chat.>"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, mint(t, base, `{"user":"ada","allow":["chat.>"]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, "chat.a", nil); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	store := func(from, n int) {
		for i := from; i < from+n; i++ {
			m := nats.NewMsg("rc.room.chat.a")
			m.Data = []byte(`{"n":` + strconv.Itoa(i) + `}`)
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, ack.Sequence)
		}
	}
	var got []client.Event
	receive := func(n int) {
		t.Helper()
		for len(got) < n {
			select {
			case ev := <-c.Events():
				if ev.Type == "event" && ev.Room == "chat.a" {
					got = append(got, ev)
				}
			case <-ctx.Done():
				t.Fatalf("the member got %d of %d messages", len(got), n)
			}
		}
	}
	store(0, 2)
	receive(2)

	px.Cut()
	bustest.Eventually(t, 10*time.Second, func() bool { return readyz(base) != http.StatusOK }, "node still ready with its NATS link cut")
	store(2, 10)
	px.Heal()
	receive(12)
	for i, ev := range got {
		if string(ev.Data) != `{"n":`+strconv.Itoa(i)+`}` || ev.Seq != seqs[i] {
			t.Fatalf("event %d: %s seq %d; want n=%d seq %d", i, ev.Data, ev.Seq, i, seqs[i])
		}
	}
	select {
	case ev := <-c.Events():
		if ev.Type == "event" {
			t.Fatalf("one more event: %+v", ev)
		}
	case <-time.After(100 * time.Millisecond):
	}
}

func readyz(base string) int {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
