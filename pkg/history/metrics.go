package history

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the history collectors of a node. Labels are small fixed
// sets, never room names.
type Metrics struct {
	// Refills counts gaps a node refilled from the stream before
	// delivering (a message NATS dropped on the way to the node, a full
	// shard queue); Refilled the messages those refills delivered;
	// RefillFailures the refills that could not read the stream.
	Refills, Refilled, RefillFailures prometheus.Counter
	// CatchUps counts Feed.CatchUp calls (one per history room with local
	// members after a reconnect or a slow subscription), by result:
	// up_to_date (nothing missing), caught_up or error; CaughtUp the
	// messages they delivered.
	CatchUps *prometheus.CounterVec
	CaughtUp prometheus.Counter
	// Recoveries counts joins with `since`, by result: recovered,
	// not_recovered (the client refetches) or error.
	Recoveries *prometheus.CounterVec
	// Replayed counts messages replayed to recovering members.
	Replayed prometheus.Counter
	// Resets counts streams found reset (a new epoch).
	Resets prometheus.Counter
	// Queries counts history pages read (client `history`, rc.history.<room>).
	Queries prometheus.Counter
	// Foreign counts messages on rc.stored.<room> that did not come from
	// the room's stream, and were dropped.
	Foreign prometheus.Counter
}

// NewMetrics makes the collectors and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_history_" + name, Help: help})
	}
	m := &Metrics{
		Refills:        c("refills_total", "Gaps in a room's sequence refilled from the stream before delivery."),
		Refilled:       c("refilled_total", "Messages delivered by gap refills."),
		RefillFailures: c("refill_failures_total", "Gap refills that could not read the stream (members missed messages)."),
		CatchUps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_history_catchups_total",
			Help: "Catch-ups of a room's tail after a reconnect or a slow subscription, by result (up_to_date, caught_up, error)."}, []string{"result"}),
		CaughtUp: c("caught_up_total", "Messages delivered by catch-ups: lost at the tail of a room on the way to the node."),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomcast_history_recoveries_total",
			Help: "Joins with since, by result (recovered, not_recovered, error)."}, []string{"result"}),
		Replayed: c("replayed_total", "Messages replayed to recovering members."),
		Resets:   c("resets_total", "History streams found reset (new epoch)."),
		Queries:  c("queries_total", "History pages read."),
		Foreign:  c("foreign_total", "Messages on rc.stored.<room> not from the room's stream, dropped."),
	}
	if reg != nil {
		reg.MustRegister(m.Refills, m.Refilled, m.RefillFailures, m.CatchUps, m.CaughtUp, m.Recoveries, m.Replayed, m.Resets, m.Queries, m.Foreign)
	}
	return m
}
