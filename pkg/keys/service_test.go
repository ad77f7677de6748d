package keys

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
)

func TestServe(t *testing.T) {
	srv := bustest.RunServer(t)
	st := newStore(t, srv, StoreOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subj bus.Subjects
	stop, err := Serve(ctx, bustest.Connect(t, srv), subj, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := bustest.Connect(t, srv)

	msg, err := client.Request("rc.keys.mint", []byte(`{"user":"u1","rooms":["lobby"],"session":"s-9"}`), 5*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	var m Minted
	if err := json.Unmarshal(msg.Data, &m); err != nil || m.Key == "" || m.Session != "s-9" {
		t.Fatalf("reply %s: %v", msg.Data, err)
	}
	c, err := st.Redeem(ctx, m.Key)
	if err != nil || c.User != "u1" || len(c.Rooms) != 1 {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}

	msg, err = client.Request("rc.keys.mint", []byte(`{"allow":["a.>.b"]}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e ErrorBody
	if err := json.Unmarshal(msg.Data, &e); err != nil || e.Error.Code != "bad_request" || e.Error.Message == "" {
		t.Fatalf("reply %s, want a bad_request error: %v", msg.Data, err)
	}

	stop()
	stop() // idempotent
	if _, err := client.Request("rc.keys.mint", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request after stop = %v, want no responders", err)
	}
}

// TestServeQueueGroup runs two responders, as two nodes would: each request
// is answered once.
func TestServeQueueGroup(t *testing.T) {
	srv := bustest.RunServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ma, mb := metrics.New(nil), metrics.New(nil)
	for _, m := range []*metrics.Metrics{ma, mb} {
		st := newStore(t, srv, StoreOptions{Metrics: m})
		if _, err := Serve(ctx, bustest.Connect(t, srv), bus.Subjects{Prefix: "app"}, st, nil); err != nil {
			t.Fatal(err)
		}
	}
	client := bustest.Connect(t, srv)
	// A plain subscriber counts how many replies each request gets.
	inbox := nats.NewInbox()
	replies, err := client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		if err := client.PublishRequest("app.keys.mint", inbox, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := replies.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if m, err := replies.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("extra reply %s: a request was answered twice", m.Data)
	}
	if got := counter(ma, "mint", "ok") + counter(mb, "mint", "ok"); got != n {
		t.Fatalf("%v keys minted, want %d", got, n)
	}
}

// TestServeStopsWithContext: cancelling Serve's context unsubscribes.
func TestServeStopsWithContext(t *testing.T) {
	srv := bustest.RunServer(t)
	st := newStore(t, srv, StoreOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Serve(ctx, bustest.Connect(t, srv), bus.Subjects{}, st, nil); err != nil {
		t.Fatal(err)
	}
	client := bustest.Connect(t, srv)
	if _, err := client.Request("rc.keys.mint", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	bustest.Eventually(t, 5*time.Second, func() bool {
		_, err := client.Request("rc.keys.mint", nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	}, "still answering after the context ended")
}
