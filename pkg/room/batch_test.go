package room

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
)

// orderConn records the payloads it is sent, in order.
type orderConn struct {
	mu  sync.Mutex
	got []string
}

func (c *orderConn) Send(f *frame.Prepared) error {
	var m struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(f.Payload(), &m)
	c.mu.Lock()
	c.got = append(c.got, string(m.Data))
	c.mu.Unlock()
	return nil
}
func (c *orderConn) Close(uint16, string) {}

// A run of messages for one room reaches every member in order, member by
// member, and "no echo" skips only the sender of that one message.
func TestDeliverRunKeepsOrderAndEcho(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	r := &room{name: "batch.room"}
	conns := []*orderConn{{}, {}, {}}
	list := make([]*Session, len(conns))
	for i, c := range conns {
		list[i] = &Session{hub: h, conn: c, id: "s" + strconv.Itoa(i)}
	}
	r.members.Store(&list)
	h.mu.Lock()
	h.rooms[r.name] = r
	h.mu.Unlock()

	var run []*nats.Msg
	for i := 0; i < 10; i++ {
		m := nats.NewMsg("rc.room.batch.room")
		m.Data = []byte(strconv.Itoa(i))
		if i == 3 {
			m.Header.Set(HeaderNoEcho, "s1")
		}
		run = append(run, m)
	}
	h.deliverRun(run, &shardScratch{})
	for i, c := range conns {
		want := 10
		if i == 1 {
			want = 9
		}
		if len(c.got) != want {
			t.Fatalf("member %d got %d messages, want %d: %v", i, len(c.got), want, c.got)
		}
		prev := -1
		for _, g := range c.got {
			n, _ := strconv.Atoi(g)
			if n <= prev || (i == 1 && n == 3) {
				t.Fatalf("member %d got %v", i, c.got)
			}
			prev = n
		}
	}
}

// A run costs a fixed number of allocations whatever the number of members.
func TestDeliverRunAllocs(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	count := func(members int) float64 {
		r := &room{name: "r" + strconv.Itoa(members)}
		list := make([]*Session, members)
		for i := range list {
			list[i] = &Session{hub: h, conn: nopConn{i}, id: strconv.Itoa(i)}
		}
		r.members.Store(&list)
		h.mu.Lock()
		h.rooms[r.name] = r
		h.mu.Unlock()
		run := []*nats.Msg{{Subject: "rc.room." + r.name, Data: []byte(`1`)}, {Subject: "rc.room." + r.name, Data: []byte(`2`)}}
		sc := &shardScratch{}
		return testing.AllocsPerRun(50, func() { h.deliverRun(run, sc) })
	}
	if small, big := count(10), count(5000); big != small {
		t.Fatalf("allocations grow with members: %v for 10, %v for 5000", small, big)
	}
}
