// Package metrics holds every Prometheus collector a roomcast node exports.
//
// One Metrics value is made per node and handed to each package through its
// Options; nothing registers globally, so tests can run many nodes in one
// process. A nil *Metrics is not valid: use New(nil) for an unregistered set.
package metrics

import "github.com/prometheus/client_golang/prometheus"

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
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Accepted, m.Refused, m.Closed, m.SlowConsumers, m.Rooms,
			m.MessagesIn, m.MessagesOut, m.BytesIn, m.BytesOut, m.FanoutSeconds, m.Keys,
			m.NATSConnected, m.PresenceResyncs, m.Errors)
	}
	return m
}
