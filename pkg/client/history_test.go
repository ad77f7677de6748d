package client_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/client"
)

func TestJoinSinceAndPositions(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	if _, ok := c.Position("chat.a"); ok {
		t.Fatal("position before any join")
	}
	// A plain join of a history room: the ack's position.
	ch := async(func() (client.Joined, error) { return c.JoinSince(ctxT(t), "chat.a", nil, nil) })
	m := p.expect("join")
	if _, ok := m["since"]; ok {
		t.Errorf("join without since sent one: %v", m)
	}
	p.send(`{"type":"ack","id":`+idOf(m)+`,"seq":5,"epoch":"e1"}`, `{"type":"session:list","room":"chat.a","sessions":[]}`)
	j, err := wait(t, ch)
	if err != nil || !j.History || j.Position != (client.Position{Seq: 5, Epoch: "e1"}) || j.Recovered {
		t.Fatalf("JoinSince = %+v, %v", j, err)
	}
	if pos, _ := c.Position("chat.a"); pos.Seq != 5 {
		t.Errorf("position after the ack = %+v; want 5", pos)
	}
	nextEvent(t, c) // the list
	p.send(`{"type":"event","room":"chat.a","event":"m","data":1,"seq":9,"epoch":"e1"}`)
	if ev := nextEvent(t, c); ev.Seq != 9 || ev.Epoch != "e1" {
		t.Errorf("event = %+v", ev)
	}
	if pos, _ := c.Position("chat.a"); pos != (client.Position{Seq: 9, Epoch: "e1"}) {
		t.Errorf("position after the event = %+v", pos)
	}

	// A join with since, recovered: since goes out; the position is since
	// until the replay moves it.
	ch = async(func() (client.Joined, error) {
		return c.JoinSince(ctxT(t), "chat.b", nil, &client.Position{Seq: 3, Epoch: "e1"})
	})
	m = p.expect("join")
	since, _ := m["since"].(map[string]any)
	if since["seq"] != 3.0 || since["epoch"] != "e1" {
		t.Fatalf("join = %v; want since {3, e1}", m)
	}
	p.send(`{"type":"ack","id":`+idOf(m)+`,"seq":12,"epoch":"e1","recovered":true}`, `{"type":"session:list","room":"chat.b","sessions":[]}`)
	j, err = wait(t, ch)
	if err != nil || !j.Recovered || j.Position.Seq != 12 {
		t.Fatalf("JoinSince recovered = %+v, %v", j, err)
	}
	if pos, _ := c.Position("chat.b"); pos.Seq != 3 {
		t.Errorf("position before the replay = %+v; want since (3)", pos)
	}

	// Not recovered: the node's position.
	ch = async(func() (client.Joined, error) {
		return c.JoinSince(ctxT(t), "chat.c", nil, &client.Position{Seq: 3, Epoch: "old"})
	})
	m = p.expect("join")
	p.send(`{"type":"ack","id":`+idOf(m)+`,"seq":40,"epoch":"e2","recovered":false}`, `{"type":"session:list","room":"chat.c","sessions":[]}`)
	if j, err = wait(t, ch); err != nil || j.Recovered || j.Position != (client.Position{Seq: 40, Epoch: "e2"}) {
		t.Fatalf("JoinSince not recovered = %+v, %v", j, err)
	}
	if pos, _ := c.Position("chat.c"); pos.Seq != 40 {
		t.Errorf("position after recovered:false = %+v; want 40", pos)
	}
}

func TestHistoryPage(t *testing.T) {
	n := newFakeNode(t, nil)
	c, p := dial(t, n, nil)
	ch := async(func() (client.HistoryPage, error) {
		return c.History(ctxT(t), "chat.a", client.HistoryQuery{Limit: 2, Before: 10})
	})
	m := p.expect("history")
	if m["room"] != "chat.a" || m["limit"] != 2.0 || m["before"] != 10.0 || m["after"] != nil {
		t.Fatalf("history request = %v", m)
	}
	p.send(`{"type":"history","id":` + idOf(m) + `,"room":"chat.a","seq":12,"epoch":"e","events":[` +
		`{"seq":7,"event":"m","data":{"t":"a"},"from":"s1","time":1700000000000},{"seq":8,"event":"m","data":2,"time":1700000000001}]}`)
	pg, err := wait(t, ch)
	if err != nil || pg.Seq != 12 || pg.Epoch != "e" || len(pg.Events) != 2 {
		t.Fatalf("History = %+v, %v", pg, err)
	}
	e := pg.Events[0]
	if e.Type != client.TypeEvent || e.Room != "chat.a" || e.Seq != 7 || e.From != "s1" || string(e.Data) != `{"t":"a"}` ||
		e.Epoch != "e" || e.Time.UnixMilli() != 1700000000000 {
		t.Errorf("first event = %+v", e)
	}
}

// TestResilientRecovers: the socket dies; the Resilient dials again,
// re-joins with since = the last event seen, and the events of both
// connections arrive on one channel.
func TestResilientRecovers(t *testing.T) {
	n := newFakeNode(t, nil)
	var mu sync.Mutex
	var conns []net.Conn
	var urls []int
	o := client.ResilientOptions{
		URL: func(_ context.Context, attempt int) (string, error) {
			mu.Lock()
			urls = append(urls, attempt)
			mu.Unlock()
			return n.url + "/chat", nil
		},
		Options: client.Options{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
			return c, err
		}},
	}
	rejoined := make(chan map[string]client.Rejoin, 1)
	o.OnReconnect = func(_ *client.Client, m map[string]client.Rejoin) { rejoined <- m }
	ch := async(func() (*client.Resilient, error) { return client.DialResilient(ctxT(t), o) })
	p := n.accept()
	p.welcome()
	r, err := wait(t, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jch := async(func() (client.Joined, error) { return r.Join(ctxT(t), "chat.a", nil) })
	m := p.expect("join")
	p.send(`{"type":"ack","id":`+idOf(m)+`,"seq":5,"epoch":"e"}`, `{"type":"session:list","room":"chat.a","sessions":[]}`,
		`{"type":"event","room":"chat.a","event":"m","data":1,"seq":7,"epoch":"e"}`)
	if _, err := wait(t, jch); err != nil {
		t.Fatal(err)
	}
	next := func() client.Event {
		t.Helper()
		select {
		case ev := <-r.Events():
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return client.Event{}
		}
	}
	next() // list
	if ev := next(); ev.Seq != 7 {
		t.Fatalf("event %+v; want seq 7", ev)
	}
	// The socket dies without a close frame.
	mu.Lock()
	conns[0].Close()
	mu.Unlock()
	p2 := n.accept()
	p2.welcome()
	m = p2.expect("join")
	since, _ := m["since"].(map[string]any)
	if m["room"] != "chat.a" || since["seq"] != 7.0 || since["epoch"] != "e" {
		t.Fatalf("re-join = %v; want since {7, e}", m)
	}
	p2.send(`{"type":"ack","id":`+idOf(m)+`,"seq":8,"epoch":"e","recovered":true}`, `{"type":"session:list","room":"chat.a","sessions":[]}`,
		`{"type":"event","room":"chat.a","event":"m","data":2,"seq":8,"epoch":"e"}`)
	select {
	case m := <-rejoined:
		if rj := m["chat.a"]; rj.Err != nil || !rj.Recovered {
			t.Errorf("rejoin = %+v", rj)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnReconnect not called")
	}
	next() // list
	if ev := next(); ev.Seq != 8 {
		t.Fatalf("event after the reconnect %+v; want seq 8", ev)
	}
	mu.Lock() // the Resilient may be dialing again once p2 closes
	if r.Reconnects() != 1 || len(urls) != 2 || urls[1] != 0 {
		t.Errorf("reconnects %d, URL attempts %v", r.Reconnects(), urls)
	}
	mu.Unlock()
	p2.conn.Close() // the fake node does not answer close frames
}
