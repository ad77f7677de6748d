package node

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/history"
)

// History is one entry of the `history` configuration: rooms matching a
// pattern keep their last messages in JetStream (see pkg/history).
type History = history.Config

// startHistory creates or updates the history streams, before the Hub
// subscribes to any room, so that history rooms find their stream. Without
// history configured it does nothing.
func (n *Node) startHistory(ctx context.Context) error {
	if len(n.opts.History) == 0 {
		return nil
	}
	st, err := history.New(history.Options{
		NC: n.bus.NC, JS: n.bus.JS, Subjects: n.subjects, Config: n.opts.History,
		Logger: n.log, Metrics: history.NewMetrics(n.registry),
	})
	if err != nil {
		return err
	}
	if err := st.Start(ctx); err != nil {
		return err
	}
	for _, s := range st.Streams() {
		c := s.Config()
		n.log.Info("room history", "rooms", c.Rooms, "size", c.Size, "ttl", c.TTL.String(), "stream", s.Name(), "epoch", s.Epoch())
	}
	n.history = st
	return nil
}

// serveHistory answers rc.history.<room> for back-ends.
func (n *Node) serveHistory() error {
	if n.history == nil {
		return nil
	}
	return n.hub.ServeHistory()
}

// catchUpHistory has the hub catch up its history rooms whenever messages
// may have been lost on their way to this node: a message lost at the tail
// of a room that then goes quiet is otherwise noticed only with the room's
// next message.
func (n *Node) catchUpHistory() {
	if n.history == nil {
		return
	}
	n.bus.SetHandlers(bus.Handlers{
		// What was published while the connection was down is stored,
		// but never came here.
		Reconnected: n.hub.CatchUp,
		// A room's subscription overflowed its shard queue (counted in
		// roomcast_fanout_dropped_total). The hub waits a moment before
		// the pass, so that what is still queued lands first.
		SlowConsumer: func(sub *nats.Subscription) {
			if _, ok := n.history.RoomFromLive(sub.Subject); ok {
				n.hub.CatchUp()
			}
		},
	})
}

func (n *Node) stopHistory() {
	if n.history != nil {
		n.history.Close()
	}
}
