package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestRunServer(t *testing.T) {
	s := RunServer(t)
	nc := Connect(t, s)
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "hi" {
		t.Fatalf("got %v %v", m, err)
	}
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream off")
	}
}

func TestProxyCutAndHeal(t *testing.T) {
	s := RunServer(t)
	px := NewProxy(t, s.Addr().String())
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(px.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := Connect(t, s)

	px.Cut()
	Eventually(t, 5*time.Second, func() bool { return !nc.IsConnected() }, "still connected after Cut")
	time.Sleep(100 * time.Millisecond) // reconnect attempts are refused meanwhile
	if nc.IsConnected() {
		t.Fatal("reconnected through a cut proxy")
	}
	if err := pub.Publish("x", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	pub.Flush()

	px.Heal()
	select {
	case <-reconnected:
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnect after Heal")
	}
	if err := nc.Flush(); err != nil { // the server has the subscription again
		t.Fatal(err)
	}
	if err := pub.Publish("x", []byte("after")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "after" {
		t.Fatalf("first message after the heal: %v %v; want \"after\" (what was sent during the cut is lost)", m, err)
	}
}
