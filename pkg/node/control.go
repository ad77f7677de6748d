package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/room"
)

// Back-end control over NATS: every node subscribes to rc.control.<action>
// (no queue group: a kick must reach the node that holds the session) and
// acts on its own sessions. Who may publish there is NATS's business
// (docs/nats-permissions.conf); a node trusts what arrives.
//
// A request with a reply subject is answered by each node that acted:
// {"ok":true,"affected":N}, or {"ok":false,"error":{"code","message"}} for
// a request no node can act on (bad JSON, invalid room or close code).
// Nodes with nothing to do stay silent, so the first answer to a join,
// leave or drain comes from the node that did it, and a request nobody can
// act on times out.
//
//	kick        {"session"?, "user"?, "code"?: 4003, "reason"?}   close matching sessions
//	close-room  {"room", "code"?, "reason"?, "close"?: false}     remove every member (close: disconnect)
//	drain       {"node"}                                           that node drains as on SIGTERM
//	join        {"session", "room", "meta"?}                       the owning node joins the session
//	leave       {"session", "room"}                                the owning node removes it

// control is the node's control state.
type control struct {
	subs      []*nats.Subscription
	drainOnce sync.Once
	// exit is closed when a drain requested over rc.control.drain has
	// finished and the node runs with ExitOnDrain: Run then returns.
	exit chan struct{}
}

func newControl() *control { return &control{exit: make(chan struct{})} }

type controlAnswer struct {
	OK       bool         `json:"ok"`
	Affected int          `json:"affected"`
	Error    *errorDetail `json:"error,omitempty"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// startControl subscribes to rc.control.*; requests reach this node once it
// returns (if NATS is up).
func (n *Node) startControl() error {
	for action, h := range map[string]func(*nats.Msg) (int, bool, error){
		"kick":       n.controlKick,
		"close-room": n.controlCloseRoom,
		"drain":      n.controlDrain,
		"join":       n.controlJoin,
		"leave":      n.controlLeave,
	} {
		subject := n.subjects.Control(action)
		sub, err := n.bus.NC.Subscribe(subject, func(m *nats.Msg) { n.serveControl(action, m, h) })
		if err != nil {
			return fmt.Errorf("cannot subscribe to %s: %w", subject, err)
		}
		n.ctl.subs = append(n.ctl.subs, sub)
	}
	_ = n.bus.NC.FlushTimeout(flushControl)
	return nil
}

// flushControl bounds the round trip that makes the subscriptions effective.
const flushControl = 2 * time.Second

func (n *Node) stopControl() {
	for _, s := range n.ctl.subs {
		_ = s.Unsubscribe()
	}
}

// serveControl runs one request: h returns how many sessions it affected,
// whether this node acted (and so answers), or an error for the caller.
func (n *Node) serveControl(action string, m *nats.Msg, h func(*nats.Msg) (int, bool, error)) {
	affected, acted, err := h(m)
	var a controlAnswer
	switch {
	case err != nil:
		var ce *room.ControlError
		if !errors.As(err, &ce) {
			ce = &room.ControlError{Code: "bad_request", Message: err.Error()}
		}
		a.Error = &errorDetail{Code: ce.Code, Message: ce.Message}
		n.metrics.Control.WithLabelValues(action, "error").Inc()
		n.log.Debug("control request refused", "action", action, "err", err)
	case !acted:
		return
	default:
		a.OK, a.Affected = true, affected
		n.metrics.Control.WithLabelValues(action, "ok").Inc()
	}
	if m.Reply == "" {
		return
	}
	b, _ := json.Marshal(a)
	if err := m.Respond(b); err != nil {
		n.log.Debug("control answer not sent", "action", action, "err", err)
	}
}

// decodeControl reads a request body into v, with an error for people.
func decodeControl(action string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("rc.control.%s: body must be a JSON object (see the README's subject table): %v", action, err)
	}
	return nil
}

func (n *Node) controlKick(m *nats.Msg) (int, bool, error) {
	var req struct {
		Session string `json:"session"`
		User    string `json:"user"`
		Code    uint16 `json:"code"`
		Reason  string `json:"reason"`
	}
	if err := decodeControl("kick", m.Data, &req); err != nil {
		return 0, false, err
	}
	k, err := n.hub.Kick(req.Session, req.User, req.Code, req.Reason)
	return k, k > 0, err
}

func (n *Node) controlCloseRoom(m *nats.Msg) (int, bool, error) {
	var req struct {
		Room   string `json:"room"`
		Code   uint16 `json:"code"`
		Reason string `json:"reason"`
		Close  bool   `json:"close"`
	}
	if err := decodeControl("close-room", m.Data, &req); err != nil {
		return 0, false, err
	}
	k, err := n.hub.CloseRoom(req.Room, req.Code, req.Reason, req.Close)
	return k, k > 0, err
}

func (n *Node) controlJoin(m *nats.Msg) (int, bool, error) {
	var req struct {
		Session string          `json:"session"`
		Room    string          `json:"room"`
		Meta    json.RawMessage `json:"meta"`
	}
	if err := decodeControl("join", m.Data, &req); err != nil {
		return 0, false, err
	}
	if req.Session == "" {
		return 0, false, errors.New(`rc.control.join needs "session" and "room"`)
	}
	found, err := n.hub.JoinSession(req.Session, req.Room, req.Meta)
	return 1, found, err
}

func (n *Node) controlLeave(m *nats.Msg) (int, bool, error) {
	var req struct {
		Session string `json:"session"`
		Room    string `json:"room"`
	}
	if err := decodeControl("leave", m.Data, &req); err != nil {
		return 0, false, err
	}
	if req.Session == "" {
		return 0, false, errors.New(`rc.control.leave needs "session" and "room"`)
	}
	found, left, err := n.hub.LeaveSession(req.Session, req.Room)
	k := 0
	if left {
		k = 1
	}
	return k, found, err
}

// controlDrain starts this node's drain when the request names it: as on
// SIGTERM, readiness goes false, upgrades are refused and every connection
// is closed with 1001 over DrainWindow; the process keeps running (not
// ready) until it is stopped, or exits once drained with ExitOnDrain.
func (n *Node) controlDrain(m *nats.Msg) (int, bool, error) {
	var req struct {
		Node string `json:"node"`
	}
	if err := decodeControl("drain", m.Data, &req); err != nil {
		return 0, false, err
	}
	if req.Node == "" {
		return 0, false, errors.New(`rc.control.drain needs "node": the id of the node to drain`)
	}
	if req.Node != n.opts.NodeID {
		return 0, false, nil
	}
	conns := n.loop.Conns()
	n.ctl.drainOnce.Do(func() { go n.remoteDrain() })
	return conns, true, nil
}

func (n *Node) remoteDrain() {
	n.log.Info("draining on request (rc.control.drain)", "connections", n.loop.Conns(), "window", n.opts.DrainWindow,
		"exit", n.opts.ExitOnDrain)
	n.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DrainGrace)
	defer cancel()
	window := min(n.opts.DrainWindow, n.opts.DrainGrace*9/10)
	if err := n.loop.Drain(ctx, window); err != nil {
		n.log.Warn("drain incomplete", "err", err)
	} else {
		n.log.Info("drained: no connections left; not ready until stopped")
	}
	if n.opts.ExitOnDrain {
		close(n.ctl.exit)
	}
}
