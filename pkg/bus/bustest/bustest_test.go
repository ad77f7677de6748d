package bustest

import (
	"testing"
	"time"
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
