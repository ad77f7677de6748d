package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gobwas/ws"
)

// call is one request waiting for the node's answer. Its fields are
// guarded by Client.mu until done is closed, read-only after.
type call struct {
	id       uint64
	room     string
	wantList bool // complete only once a session:list for room arrived
	needAck  bool // complete only once acked (join), not for presence
	acked    bool
	listed   bool
	list     []Member
	data     json.RawMessage
	joined   Joined      // join: what the ack said
	since    *Position   // join: the position asked for
	page     HistoryPage // history
	err      error
	done     chan struct{}
	resolved bool
}

// resolveLocked completes cl once; c.mu must be held.
func (c *Client) resolveLocked(cl *call, err error) {
	if cl.resolved {
		return
	}
	cl.resolved = true
	cl.err = err
	close(cl.done)
}

// forgetLocked drops cl from every index; c.mu must be held.
func (c *Client) forgetLocked(cl *call) {
	delete(c.calls, cl.id)
	if cl.wantList {
		c.lists[cl.room] = removeCall(c.lists[cl.room], cl)
		if len(c.lists[cl.room]) == 0 {
			delete(c.lists, cl.room)
		}
	}
	c.pings = removeCall(c.pings, cl)
}

func removeCall(s []*call, cl *call) []*call {
	for i, x := range s {
		if x == cl {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// answer applies an ack or reply to the call with that id; complete says
// whether the call is now done.
func (c *Client) answer(id uint64, complete func(*call) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[id]
	if cl == nil {
		return // the caller gave up (context) or the node sent a stray id
	}
	if complete(cl) {
		c.forgetLocked(cl)
		c.resolveLocked(cl, nil)
	}
}

// fail completes the call with that id with err; it reports whether there
// was such a call.
func (c *Client) fail(id uint64, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[id]
	if cl == nil {
		return false
	}
	c.forgetLocked(cl)
	c.resolveLocked(cl, err)
	return true
}

// list hands a session:list to the call waiting for it: the one whose id
// it echoes if the node echoes ids, else the oldest call waiting for that
// room. The node answers in order, so oldest-first matches.
func (c *Client) list(m *inMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[m.ID]
	if cl == nil || !cl.wantList || cl.listed {
		cl = nil
		for _, x := range c.lists[m.Room] {
			if !x.listed {
				cl = x
				break
			}
		}
	}
	if cl == nil {
		return
	}
	cl.listed, cl.list = true, m.Sessions
	if !cl.needAck || cl.acked {
		c.forgetLocked(cl)
		c.resolveLocked(cl, nil)
	}
}

// pong completes the ping with that id, or the oldest one if the node's
// pong carries no id.
func (c *Client) pong(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[id]
	if cl == nil || id == 0 {
		if len(c.pings) == 0 {
			return
		}
		cl = c.pings[0]
	}
	c.forgetLocked(cl)
	c.resolveLocked(cl, nil)
}

// roundTrip sends m with a fresh id and waits until the reader completes
// the call, the context ends or the connection does.
func (c *Client) roundTrip(ctx context.Context, m *outMsg, cl *call) error {
	cl.id = c.nextID.Add(1)
	cl.done = make(chan struct{})
	m.ID = cl.id
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", m.Type, err)
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return c.closedErr()
	}
	c.calls[cl.id] = cl
	if cl.wantList {
		c.lists[cl.room] = append(c.lists[cl.room], cl)
	}
	if m.Type == "ping" {
		c.pings = append(c.pings, cl)
	}
	c.mu.Unlock()

	if err := c.writeFrame(ctx, ws.OpText, b); err != nil {
		c.abandon(cl)
		return err
	}
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
		c.abandon(cl)
		return fmt.Errorf("client: %s: %w", m.Type, ctx.Err())
	}
}

func (c *Client) abandon(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished {
		c.forgetLocked(cl)
	}
}

// Join joins room with optional meta (anything JSON-encodable, nil for
// none) and returns the room's members, self included. It waits for the
// node's ack and the session:list that follows; that list is also
// delivered as an Event.
func (c *Client) Join(ctx context.Context, room string, meta any) ([]Member, error) {
	j, err := c.JoinSince(ctx, room, meta, nil)
	return j.Members, err
}

// Leave leaves room and waits for the node's ack.
func (c *Client) Leave(ctx context.Context, room string) error {
	return c.roundTrip(ctx, &outMsg{Type: "leave", Room: room}, &call{})
}

// PublishOption changes how Publish sends.
type PublishOption func(*outMsg)

// NoEcho asks the node not to deliver the message back to this session.
func NoEcho() PublishOption {
	return func(m *outMsg) {
		f := false
		m.Echo = &f
	}
}

// Publish broadcasts event with data (anything JSON-encodable; a
// json.RawMessage is sent as is) to every session in room, and waits for
// the node's ack. The ack means the node accepted it, not that every
// member received it.
func (c *Client) Publish(ctx context.Context, room, event string, data any, opts ...PublishOption) error {
	db, err := marshalData(data)
	if err != nil {
		return err
	}
	if db == nil {
		db = json.RawMessage("null")
	}
	m := &outMsg{Type: "publish", Room: room, Event: event, Data: db}
	for _, o := range opts {
		o(m)
	}
	return c.roundTrip(ctx, m, &call{})
}

// Presence asks for a fresh member list of room.
func (c *Client) Presence(ctx context.Context, room string) ([]Member, error) {
	cl := &call{room: room, wantList: true}
	if err := c.roundTrip(ctx, &outMsg{Type: "presence", Room: room}, cl); err != nil {
		return nil, err
	}
	return cl.list, nil
}

// Send sends event with data to the app back-end that owns this session
// (rc.send.<session> on NATS) and waits for the node's ack.
func (c *Client) Send(ctx context.Context, event string, data any) error {
	db, err := marshalData(data)
	if err != nil {
		return err
	}
	if db == nil {
		db = json.RawMessage("null")
	}
	return c.roundTrip(ctx, &outMsg{Type: "send", Event: event, Data: db}, &call{})
}

// RPC sends a request to rc.rpc.<method> through the node and returns the
// back-end's answer. A missing back-end comes back as *Error (typically
// "unavailable" or "timeout").
func (c *Client) RPC(ctx context.Context, method string, data any) (json.RawMessage, error) {
	db, err := marshalData(data)
	if err != nil {
		return nil, err
	}
	if db == nil {
		db = json.RawMessage("null")
	}
	cl := &call{}
	if err := c.roundTrip(ctx, &outMsg{Type: "rpc", Method: method, Data: db}, cl); err != nil {
		return nil, err
	}
	return cl.data, nil
}

// Ping sends an application-level ping and waits for the pong: a round
// trip through the node's protocol layer, not just its TCP stack.
func (c *Client) Ping(ctx context.Context) error {
	return c.roundTrip(ctx, &outMsg{Type: "ping"}, &call{})
}
