// Package metrics holds every Prometheus collector a roomcast node exports.
//
// One Metrics value is made per node and handed to each package through its
// Options; nothing registers globally, so tests can run many nodes in one
// process. A nil *Metrics is not valid: use New(nil) for an unregistered set.
package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the node's set of collectors. Label values are small fixed sets
// (reasons, kinds), never room names or users, so cardinality stays bounded.
type Metrics struct {
	// Connections is the number of open WebSocket connections.
	Connections prometheus.Gauge
	// Accepted counts upgrades that completed.
	Accepted prometheus.Counter
	// Refused counts upgrades refused before the 101, by reason
	// (key, origin, hook, draining, limit, bad_request, unavailable).
	Refused *prometheus.CounterVec
	// Closed counts closed connections by close code.
	Closed *prometheus.CounterVec
	// SlowConsumers counts connections cut with 4009.
	SlowConsumers prometheus.Counter
	// Rooms is the number of rooms with local members.
	Rooms prometheus.Gauge
	// MessagesIn counts client messages by type (join, publish, ...).
	MessagesIn *prometheus.CounterVec
	// MessagesOut counts messages queued to clients, by kind (event, presence, reply, ...).
	MessagesOut *prometheus.CounterVec
	// BytesIn and BytesOut count WebSocket payload bytes.
	BytesIn, BytesOut prometheus.Counter
	// FanoutSeconds is the time from a room message leaving NATS to being
	// queued on every local member.
	FanoutSeconds prometheus.Histogram
	// Keys counts key operations by op (mint, redeem) and result (ok, invalid, error).
	Keys *prometheus.CounterVec
	// NATSConnected is 1 while the node's NATS connection is up.
	NATSConnected prometheus.Gauge
	// PresenceResyncs counts presence snapshot requests after gaps or restarts.
	PresenceResyncs prometheus.Counter
	// Errors counts error replies sent to clients, by code.
	Errors *prometheus.CounterVec
	// Events counts lifecycle events (rc.events.<kind>) by kind and result:
	// published, suppressed (nobody listened), dropped (queue full or NATS
	// down).
	Events *prometheus.CounterVec
	// EventProbes counts interest probes on rc.events.<kind> (--events auto).
	EventProbes prometheus.Counter
	// Control counts rc.control.<action> requests this node acted on, by
	// action and result (ok, error).
	Control *prometheus.CounterVec
	// PeerEvents counts what each liveness detector (source: heartbeat,
	// gossip) saw of the other nodes, by event: joined (a node came, or
	// came back), left (a graceful stop), failed (declared dead) and
	// restarted (a new incarnation). A detector's series appear when it
	// starts (PeerEventsOf), so a node without gossip exports none for it.
	PeerEvents *prometheus.CounterVec

	// peers is roomcast_peers, read from the detectors at scrape time
	// (SetPeers).
	peers *peers

	// fanoutDropped is read by the roomcast_fanout_dropped_total collector;
	// the Hub sets it (SetFanoutDropped), since the count lives in its NATS
	// subscriptions.
	fanoutDropped atomic.Pointer[func() float64]
}

// New makes the collectors and registers them with reg (nil: unregistered).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomcast_connections", Help: "Open WebSocket connections."}),
		Accepted:        prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_connections_accepted_total", Help: "WebSocket upgrades completed."}),
		Refused:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_connections_refused_total", Help: "Upgrades refused before the 101, by reason."}, []string{"reason"}),
		Closed:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_connections_closed_total", Help: "Closed connections by close code."}, []string{"code"}),
		SlowConsumers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_slow_consumers_total", Help: "Connections closed with 4009 because their outgoing queue was full."}),
		Rooms:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomcast_rooms", Help: "Rooms with members on this node."}),
		MessagesIn:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_messages_in_total", Help: "Client messages received, by type."}, []string{"type"}),
		MessagesOut:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_messages_out_total", Help: "Messages queued to clients, by kind."}, []string{"kind"}),
		BytesIn:         prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_bytes_in_total", Help: "WebSocket payload bytes received."}),
		BytesOut:        prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_bytes_out_total", Help: "WebSocket bytes written to sockets."}),
		FanoutSeconds:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomcast_fanout_seconds", Help: "Time to queue one room message on every local member.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)}),
		Keys:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_keys_total", Help: "Key operations by op and result."}, []string{"op", "result"}),
		NATSConnected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomcast_nats_connected", Help: "1 while the NATS connection is up."}),
		PresenceResyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_presence_resyncs_total", Help: "Presence snapshot requests after a gap or a node restart."}),
		Errors:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_errors_total", Help: "Error replies sent to clients, by code."}, []string{"code"}),
		Events:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_events_total", Help: "Lifecycle events by kind and result (published, suppressed: nobody listened, dropped)."}, []string{"kind", "result"}),
		EventProbes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_event_probes_total", Help: "Interest probes on rc.events.<kind> (--events auto)."}),
		Control:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_control_total", Help: "rc.control requests acted on, by action and result."}, []string{"action", "result"}),
		PeerEvents:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_peer_events_total", Help: "Other nodes seen joining, leaving gracefully, declared dead (failed) and restarted, by liveness detector (source)."}, []string{"source", "event"}),
		peers: &peers{
			vec:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "roomcast_peers", Help: "Other nodes each liveness detector (source) considers alive."}, []string{"source"}),
			count: map[string]func() int{},
		},
	}
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "roomcast_fanout_dropped_total",
		Help: "Room messages NATS delivered but the fan-out dropped because its shard queue was full.",
	}, func() float64 {
		if f := m.fanoutDropped.Load(); f != nil {
			return (*f)()
		}
		return 0
	})
	if reg != nil {
		reg.MustRegister(m.Connections, m.Accepted, m.Refused, m.Closed, m.SlowConsumers, m.Rooms,
			m.MessagesIn, m.MessagesOut, m.BytesIn, m.BytesOut, m.FanoutSeconds, m.Keys,
			m.NATSConnected, m.PresenceResyncs, m.Errors, m.Events, m.EventProbes, m.Control, dropped,
			m.PeerEvents, m.peers)
	}
	return m
}

// SetFanoutDropped names the function that roomcast_fanout_dropped_total
// reports: it is called at every scrape and must be monotonic and cheap.
func (m *Metrics) SetFanoutDropped(f func() float64) { m.fanoutDropped.Store(&f) }

// The liveness detectors: label values of source in roomcast_peers and
// roomcast_peer_events_total.
const (
	// SourceHeartbeat is presence's NATS heartbeats (pkg/presence).
	SourceHeartbeat = "heartbeat"
	// SourceGossip is memberlist's failure detector (pkg/gossip).
	SourceGossip = "gossip"
)

// PeerCounters are one detector's roomcast_peer_events_total series.
type PeerCounters struct {
	Joined, Left, Failed, Restarted prometheus.Counter
}

// PeerEventsOf returns source's roomcast_peer_events_total series and
// exports them from now on, at 0 until counted: a detector calls it when it
// starts, so that rate() sees its first event and a detector that never
// runs exports nothing.
func (m *Metrics) PeerEventsOf(source string) PeerCounters {
	ev := func(event string) prometheus.Counter { return m.PeerEvents.WithLabelValues(source, event) }
	return PeerCounters{Joined: ev("joined"), Left: ev("left"), Failed: ev("failed"), Restarted: ev("restarted")}
}

// SetPeers names the function that reports roomcast_peers{source}: it is
// called at every scrape and must be cheap. A source never set has no
// series (a node without gossip exports no gossip count, rather than 0).
func (m *Metrics) SetPeers(source string, f func() int) {
	m.peers.mu.Lock()
	m.peers.count[source] = f
	m.peers.mu.Unlock()
}

// peers is the roomcast_peers collector. The detectors already keep who is
// alive under their own locks, so counting at scrape time (a walk over a
// few dozen nodes) costs nothing between scrapes, where keeping a gauge
// up to date would cost a metric update per heartbeat.
type peers struct {
	// vec holds the values between the Set and the Collect of one scrape;
	// mu keeps two scrapes from interleaving there.
	vec   *prometheus.GaugeVec
	mu    sync.Mutex
	count map[string]func() int
}

func (p *peers) Describe(ch chan<- *prometheus.Desc) { p.vec.Describe(ch) }

func (p *peers) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for source, f := range p.count {
		p.vec.WithLabelValues(source).Set(float64(f()))
	}
	p.vec.Collect(ch)
}
