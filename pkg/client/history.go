package client

import (
	"context"
	"encoding/json"
	"time"
)

// Room history. In a room that keeps history every event carries Seq and
// Epoch; the client keeps the last of them per room (Position), and
// JoinSince hands it back to a node after a reconnect, which replays what
// the client missed, or says it cannot (Joined.Recovered false). Resilient
// does that by itself.

// Position is a place in a room's history: the client has every event up
// to Seq of the history incarnation Epoch (a reset history has a new one).
type Position struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// Joined is what the node answered to a join.
type Joined struct {
	// Members is the room's member list, self included.
	Members []Member
	// History is true when the room keeps history. Position is then where
	// the client stands once the join's events are in: the ack's position,
	// or since when it was recovered.
	History  bool
	Position Position
	// Recovered answers a join with since: true means every event after
	// since follows (replayed, then live), with no gap and no duplicate;
	// false means some are gone (the gap is older than the room's history,
	// the history was reset, or the room keeps none): refetch the room's
	// state, then carry on from Position.
	Recovered bool
}

// JoinSince joins room like Join and, if since is not nil, asks the node to
// replay the room's events after since (see Joined). The replayed events
// arrive as ordinary events, after the session:list and before any live
// event.
func (c *Client) JoinSince(ctx context.Context, room string, meta any, since *Position) (Joined, error) {
	mb, err := marshalData(meta)
	if err != nil {
		return Joined{}, err
	}
	cl := &call{room: room, wantList: true, needAck: true, since: since}
	if err := c.roundTrip(ctx, &outMsg{Type: "join", Room: room, Meta: mb, Since: since}, cl); err != nil {
		return Joined{}, err
	}
	cl.joined.Members = cl.list
	return cl.joined, nil
}

// Position returns the client's position in room: the Seq and Epoch of the
// last event received from it, or what the join's ack said if no event
// came since. False when the room keeps no history or was never joined.
func (c *Client) Position(room string) (Position, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pos[room]
	return p, ok
}

// joinAckedLocked records what a join's ack says about history; c.mu is
// held, on the reader goroutine, so the position is set before the
// replayed and live events that follow the ack are emitted.
func (c *Client) joinAckedLocked(cl *call, m *inMsg) {
	if !cl.needAck {
		return
	}
	if m.Recovered != nil {
		cl.joined.Recovered = *m.Recovered
	}
	if m.Epoch == "" {
		return // the room keeps no history
	}
	cl.joined.History = true
	cl.joined.Position = Position{Seq: m.Seq, Epoch: m.Epoch}
	if cl.joined.Recovered && cl.since != nil && cl.since.Seq > m.Seq {
		// The node is behind the client: it sends only what is after since.
		cl.joined.Position = *cl.since
	}
	if cl.joined.Recovered && cl.since != nil {
		// The replay moves the position from since on.
		c.pos[cl.room] = *cl.since
		return
	}
	c.pos[cl.room] = cl.joined.Position
}

// HistoryQuery selects a page of a room's history. The zero value asks for
// the newest events (the node's default limit, 100).
type HistoryQuery struct {
	// Limit is the most events returned (the node caps it at 1000).
	Limit int
	// Before returns the newest events with a lower Seq (paging back).
	Before uint64
	// After returns the oldest events with a higher Seq (paging forward);
	// with Before, those between both.
	After uint64
}

// HistoryPage is a page of a room's history.
type HistoryPage struct {
	Room string
	// Events are oldest first; each has Type "event", Room, Event, Data,
	// From (if a session sent it), Seq, Epoch and Time.
	Events []Event
	// Seq is the room's newest sequence (0: nothing stored): a client whose
	// last event has it is up to date.
	Seq   uint64
	Epoch string
	Raw   json.RawMessage
}

// History reads a page of room's history (the `history` message; the same
// allow rules as join apply). A room without history answers not_found.
func (c *Client) History(ctx context.Context, room string, q HistoryQuery) (HistoryPage, error) {
	cl := &call{}
	m := &outMsg{Type: "history", Room: room, Limit: q.Limit, Before: q.Before, After: q.After}
	if err := c.roundTrip(ctx, m, cl); err != nil {
		return HistoryPage{}, err
	}
	return cl.page, nil
}

// historyEvent is one event of a `history` answer.
type historyEvent struct {
	Seq   uint64          `json:"seq"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	From  string          `json:"from"`
	Time  int64           `json:"time"` // unix ms
}

func (m *inMsg) page(raw []byte) HistoryPage {
	p := HistoryPage{Room: m.Room, Seq: m.Seq, Epoch: m.Epoch, Raw: raw}
	for _, e := range m.Events {
		ev := Event{Type: TypeEvent, Room: m.Room, Event: e.Event, Data: e.Data, From: e.From, Seq: e.Seq, Epoch: m.Epoch}
		if e.Time != 0 {
			ev.Time = time.UnixMilli(e.Time)
		}
		p.Events = append(p.Events, ev)
	}
	return p
}
