package room

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// nextEvent reads the next lifecycle event from sub, skipping probes.
func nextEvent(t *testing.T, sub *nats.Subscription) (map[string]any, string) {
	t.Helper()
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no lifecycle event: %v", err)
		}
		if m.Header.Get(HeaderProbe) != "" {
			if len(m.Data) != 0 {
				t.Fatalf("probe with a body: %q", m.Data)
			}
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event %q: %v", m.Data, err)
		}
		if want := "rc.events." + ev["type"].(string); m.Subject != want {
			t.Fatalf("event %s on %s, want %s", m.Data, m.Subject, want)
		}
		return ev, string(m.Data)
	}
}

func TestLifecycleEvents(t *testing.T) {
	for _, mode := range []EventsMode{EventsAuto, EventsOn} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := bustest.RunServer(t)
			h := startHub(t, srv, "n1", func(o *Options) { o.Events = mode })
			nc := bustest.Connect(t, srv)
			sub, err := nc.SubscribeSync("rc.events.>")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			s, rec := open(t, h, Identity{Session: "s1", User: "ada", Meta: json.RawMessage(`{"n": 1}`), Route: "/chat",
				Remote: "127.0.0.1:5000", Rooms: []string{"lobby"}, Allow: allowAll()})
			ev, raw := nextEvent(t, sub)
			at := ev["at"].(float64)
			if now := float64(time.Now().UnixMilli()); at < now-10000 || at > now+1000 {
				t.Fatalf("at %v is not unix ms now (%v)", at, now)
			}
			want := fmt.Sprintf(`{"type":"connect","session":"s1","user":"ada","meta":{"n":1},"node":"n1","route":"/chat","remote":"127.0.0.1:5000","at":%d}`, int64(at))
			if raw != want {
				t.Fatalf("connect:\n got %s\nwant %s", raw, want)
			}
			if ev, raw = nextEvent(t, sub); ev["type"] != "join" || ev["room"] != "lobby" ||
				raw != fmt.Sprintf(`{"type":"join","session":"s1","user":"ada","room":"lobby","node":"n1","at":%d}`, int64(ev["at"].(float64))) {
				t.Fatalf("auto-join event: %s", raw)
			}
			rec.expect(t, "session:list")
			send(s, `{"type":"join","id":1,"room":"r2"}`)
			if ev, _ = nextEvent(t, sub); ev["type"] != "join" || ev["room"] != "r2" {
				t.Fatalf("join event: %v", ev)
			}
			send(s, `{"type":"join","id":2,"room":"r2","meta":{"x":1}}`) // meta update: no event
			send(s, `{"type":"nope","id":3}`)
			ev, raw = nextEvent(t, sub)
			if ev["type"] != "error" || ev["code"] != CodeBadRequest || !strings.Contains(ev["message"].(string), "unknown type") ||
				!strings.HasPrefix(raw, `{"type":"error","session":"s1","user":"ada","node":"n1","code":"bad_request","message":`) {
				t.Fatalf("error event: %s", raw)
			}
			send(s, `{"type":"leave","id":4,"room":"r2"}`)
			if ev, _ = nextEvent(t, sub); ev["type"] != "leave" || ev["room"] != "r2" {
				t.Fatalf("leave event: %v", ev)
			}
			s.Closed(frame.CloseSlowConsumer)
			if ev, _ = nextEvent(t, sub); ev["type"] != "leave" || ev["room"] != "lobby" {
				t.Fatalf("leave on close: %v", ev)
			}
			ev, raw = nextEvent(t, sub)
			if raw != fmt.Sprintf(`{"type":"close","session":"s1","user":"ada","node":"n1","code":4009,"reason":"slow consumer: outgoing queue full","at":%d}`, int64(ev["at"].(float64))) {
				t.Fatalf("close event: %s", raw)
			}
		})
	}
}

// An event for a listener that subscribed (and flushed) before it happened
// is published, however recently it subscribed; with nobody listening in
// auto mode, events cost no NATS message (only probes, spaced).
func TestEventsAutoInterest(t *testing.T) {
	srv := bustest.RunServer(t)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := startHub(t, srv, "n1", func(o *Options) { o.Metrics = m })
	nc := bustest.Connect(t, srv)
	count := func(kind, result string) float64 {
		var d dto.Metric
		_ = m.Events.WithLabelValues(kind, result).Write(&d)
		return d.GetCounter().GetValue()
	}

	const n = 50
	for i := range n {
		s, _ := open(t, h, Identity{Session: fmt.Sprintf("quiet%d", i)})
		s.Closed(frame.CloseNormal)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return count("close", "suppressed") == n },
		"close events suppressed: %v", count("close", "suppressed"))
	if p := count("connect", "published") + count("close", "published"); p != 0 {
		t.Fatalf("%v events published with nobody listening", p)
	}
	var probes dto.Metric
	_ = m.EventProbes.Write(&probes)
	t.Logf("%d sessions opened and closed with nobody listening: %v probes", n, probes.GetCounter().GetValue())

	// Subscribe, then connect at once: the connect event arrives.
	for round := range 5 {
		sub, err := nc.SubscribeSync("rc.events.connect")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("heard%d", round)
		s, _ := open(t, h, Identity{Session: id})
		ev, _ := nextEvent(t, sub)
		if ev["session"] != id {
			t.Fatalf("round %d: connect event for %v", round, ev["session"])
		}
		// The listener leaves: the next event (published) learns it, and
		// from then on nothing is published.
		_ = sub.Unsubscribe()
		_ = nc.Flush()
		s.Closed(frame.CloseNormal)
		openOne := func(j int) {
			before := count("connect", "suppressed") + count("connect", "published")
			q, _ := open(t, h, Identity{Session: fmt.Sprintf("after%d-%d", round, j)})
			q.Closed(frame.CloseNormal)
			bustest.Eventually(t, 5*time.Second, func() bool {
				return count("connect", "suppressed")+count("connect", "published") > before
			}, "connect event not accounted for")
		}
		j := 0
		for sup := count("connect", "suppressed"); count("connect", "suppressed") == sup; j++ {
			if j == 20 {
				t.Fatalf("round %d: connect events still published 20 sessions after the listener left", round)
			}
			openOne(j)
			time.Sleep(5 * time.Millisecond)
		}
		pub := count("connect", "published")
		for k := 0; k < 10; k++ {
			openOne(j + k)
		}
		if p := count("connect", "published") - pub; p != 0 {
			t.Fatalf("round %d: %v connect events published after the node learned nobody listens", round, p)
		}
	}
}

func TestEventsOff(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", func(o *Options) { o.Events = EventsOff })
	nc := bustest.Connect(t, srv)
	sub, _ := nc.SubscribeSync("rc.events.>")
	_ = nc.Flush()
	s, _ := open(t, h, Identity{Session: "s1"})
	s.Closed(frame.CloseNormal)
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("event with --events off: %q", m.Data)
	}
}

func TestParseEventsMode(t *testing.T) {
	for in, want := range map[string]EventsMode{"": EventsAuto, "auto": EventsAuto, "on": EventsOn, "off": EventsOff} {
		if got, err := ParseEventsMode(in); err != nil || got != want {
			t.Errorf("ParseEventsMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseEventsMode("sometimes"); err == nil || !strings.Contains(err.Error(), "auto, on or off") {
		t.Errorf("bad mode: %v", err)
	}
}

// hookConn is a recorder that runs onWelcome while the welcome is being
// sent: a client that reacts at once.
type hookConn struct {
	*recorder
	once      sync.Once
	onWelcome func()
}

func (c *hookConn) Send(f *frame.Prepared) error {
	err := c.recorder.Send(f)
	c.once.Do(c.onWelcome)
	return err
}

// Auto-joined rooms are joined before the welcome: a message published the
// moment the welcome is written reaches the session, after the welcome.
func TestAutoJoinBeforeWelcome(t *testing.T) {
	srv := bustest.RunServer(t)
	h := startHub(t, srv, "n1", nil)
	nc := bustest.Connect(t, srv)
	// Another member, so that the presence change of a late joiner also
	// has to wait for the welcome.
	_, _ = open(t, h, Identity{Session: "other", Rooms: []string{"news"}})
	for i := range 20 {
		rec := &recorder{}
		c := &hookConn{recorder: rec, onWelcome: func() {
			m := nats.NewMsg("rc.room.news")
			m.Header.Set(HeaderEvent, "flash")
			m.Data = []byte(fmt.Sprint(i))
			if err := nc.PublishMsg(m); err != nil {
				t.Error(err)
			}
			if err := nc.Flush(); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond) // give the fan-out its chance to overtake
		}}
		s := h.Open(Identity{Session: fmt.Sprintf("s%d", i), Rooms: []string{"news"}}, c)
		rec.session.Store(s)
		rec.expect(t, "welcome")
		ev := rec.findType(t, "event")
		if ev["event"] != "flash" || ev["data"] != float64(i) {
			t.Fatalf("event: %v", ev)
		}
		s.Closed(frame.CloseNormal)
	}
}

// BenchmarkEvents measures what one lifecycle event costs, with and without
// a listener, in auto and on mode. cpu-ns/event is the CPU time of the whole
// process per event (user + system: the session's call, the publisher
// goroutine, the embedded NATS server routing or dropping the message, and
// the listener's client when there is one); nats-msgs/event counts what the
// node sent to NATS (events and probes). ns/op is wall time with the
// producer paced to stay under the queue bound, so in auto mode with nobody
// listening it shows the probe spacing, not a cost.
func BenchmarkEvents(b *testing.B) {
	for _, mode := range []EventsMode{EventsAuto, EventsOn} {
		for _, listen := range []bool{false, true} {
			name := mode.String() + "/nobody"
			if listen {
				name = mode.String() + "/listener"
			}
			b.Run(name, func(b *testing.B) {
				srv := bustest.RunServer(b)
				m := metrics.New(nil)
				h := startHub(b, srv, "n1", func(o *Options) { o.Events = mode; o.Metrics = m })
				if listen {
					lc := bustest.Connect(b, srv)
					if _, err := lc.Subscribe("rc.events.>", func(*nats.Msg) {}); err != nil {
						b.Fatal(err)
					}
					_ = lc.Flush()
				}
				s := &Session{hub: h, id: "bench-session", user: "bench-user"}
				total := func() float64 {
					var sum float64
					for _, r := range []string{"published", "suppressed", "dropped"} {
						var d dto.Metric
						_ = m.Events.WithLabelValues("join", r).Write(&d)
						sum += d.GetCounter().GetValue()
					}
					return sum
				}
				before := h.nc.Stats().OutMsgs
				cpu0 := cpuTime()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s.eventJoin("bench.room")
					if i%1024 == 1023 { // stay under the queue bound, as a real node does
						for total() < float64(i+1)-eventQueue/2 {
							time.Sleep(time.Millisecond)
						}
					}
				}
				for total() < float64(b.N) {
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
				var d dto.Metric
				_ = m.Events.WithLabelValues("join", "dropped").Write(&d)
				if d.GetCounter().GetValue() > 0 {
					b.Fatalf("%v events dropped", d.GetCounter().GetValue())
				}
				b.ReportMetric(float64(h.nc.Stats().OutMsgs-before)/float64(b.N), "nats-msgs/event")
			})
		}
	}
}

// cpuTime is the process's user plus system CPU time, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// stallConn blocks every Send of a room event until release is closed: a
// fan-out stuck on one member.
type stallConn struct{ release chan struct{} }

func (c stallConn) Send(f *frame.Prepared) error {
	if strings.HasPrefix(string(f.Payload()), `{"type":"event"`) {
		<-c.release
	}
	return nil
}
func (stallConn) Close(uint16, string) {}

// The fan-out's time per message and the messages it dropped (shard queue
// full) are exported to Prometheus.
func TestFanoutMetrics(t *testing.T) {
	srv := bustest.RunServer(t)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := startHub(t, srv, "n1", func(o *Options) { o.Metrics = m; o.Shards = 1; o.ShardQueue = 4 })
	nc := bustest.Connect(t, srv)
	gather := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			if c := mf.GetMetric()[0].GetCounter(); c != nil {
				return c.GetValue()
			}
			return float64(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	_, rec := open(t, h, Identity{Session: "s1", Rooms: []string{"m.room"}})
	rec.expect(t, "session:list")
	_ = nc.Publish("rc.room.m.room", []byte("1"))
	rec.findType(t, "event")
	if n := gather("roomcast_fanout_seconds"); n < 1 {
		t.Fatalf("roomcast_fanout_seconds observed %v messages", n)
	}
	if d := gather("roomcast_fanout_dropped_total"); d != 0 {
		t.Fatalf("dropped %v before any stall", d)
	}
	release := make(chan struct{})
	h.Open(Identity{Session: "stuck", Rooms: []string{"m.stall"}}, stallConn{release})
	defer close(release)
	for i := range 100 {
		_ = nc.Publish("rc.room.m.stall", []byte(strconv.Itoa(i)))
	}
	_ = nc.Flush()
	bustest.Eventually(t, 5*time.Second, func() bool { return gather("roomcast_fanout_dropped_total") > 0 },
		"no drops counted with the fan-out stalled and 100 messages behind a queue of 4")
}
