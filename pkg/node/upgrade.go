package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/keys"
	"github.com/roomcast/roomcast/pkg/loop"
	"github.com/roomcast/roomcast/pkg/names"
	"github.com/roomcast/roomcast/pkg/room"
)

const (
	connectPath = "/_/connect"
	demoWSPath  = "/_/demo/ws"
)

// route is a compiled Route.
type route struct {
	Route
	allow *names.Patterns
}

func (n *Node) isUpgradePath(path string) bool {
	if path == connectPath || strings.HasPrefix(path, connectPath+"/") {
		return true
	}
	_, ok := n.routes[path]
	return ok
}

// upgrade decides who may connect. It runs on the handshake's goroutine,
// after the WebSocket headers were checked and before the 101, so a refusal
// is a plain HTTP answer with a JSON body.
func (n *Node) upgrade(r *loop.Request) (loop.Handler, *loop.Rejection) {
	if n.draining.Load() {
		return nil, reject(503, "unavailable", "this node is draining: connect again and the load balancer picks another", "draining", 1)
	}
	ip := n.proxies.client(r.Remote.Addr(), func(k string) string { return r.Header[k] })
	if ok, which := n.limits.allow(ip); !ok {
		if which == "ip" {
			// 429, not 503: the client is over its share, the node is
			// fine. A load balancer retries a 503 on the next node (the
			// shipped nginx does, for draining nodes) and counts it as
			// the node failing.
			return nil, reject(429, "rate_limited", "too many connections from this address: close some first", "limit", 2)
		}
		return nil, reject(503, "unavailable", "this node has as many connections as it may hold: retry, the load balancer may pick another", "limit", 2)
	}
	if !n.originAllowed(r) {
		return nil, reject(403, "forbidden", "origin "+quoteShort(r.Origin)+" is not allowed: add it to --origins", "origin", 0)
	}
	h, rej := n.admit(r, ip)
	if s, ok := h.(*session); ok {
		s.ip = ip
		s.remote = r.Remote.String()
		if ip != r.Remote.Addr().Unmap() {
			s.remote = ip.String()
		}
	}
	return h, rej
}

// admit checks the credentials of a connection the limits let through.
func (n *Node) admit(r *loop.Request, ip netip.Addr) (loop.Handler, *loop.Rejection) {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.HandshakeTimeout)
	defer cancel()
	if r.Path == connectPath || strings.HasPrefix(r.Path, connectPath+"/") {
		secret := strings.TrimPrefix(strings.TrimPrefix(r.Path, connectPath), "/")
		if secret == "" {
			secret = r.Query("key")
		}
		return n.redeem(ctx, secret, nil)
	}
	rt := n.routes[r.Path]
	switch rt.Auth {
	case "public":
		return &session{n: n, id: &room.Identity{Rooms: rt.Rooms, Allow: rt.allow, Route: rt.Path}}, nil
	case "key":
		return n.redeem(ctx, r.Query("key"), rt)
	case "hook":
		return n.hook(ctx, r, rt, ip)
	}
	return nil, reject(404, "not_found", "no WebSocket route at "+quoteShort(r.Path), "bad_request", 0)
}

// redeem turns a one-time key into a session identity. On a route, the
// route's rooms and patterns are added to the key's.
func (n *Node) redeem(ctx context.Context, secret string, rt *route) (loop.Handler, *loop.Rejection) {
	if s, err := url.PathUnescape(secret); err == nil {
		secret = s
	}
	claims, err := n.keys.Redeem(ctx, secret)
	switch {
	case errors.Is(err, keys.ErrInvalidKey):
		return nil, reject(401, "unauthorized", "connection key is unknown, expired or already used: mint a new key for every connection", "key", 0)
	case err != nil:
		n.log.Warn("key redemption failed", "err", err)
		return nil, reject(503, "unavailable", "keys cannot be checked right now (NATS unreachable): retry shortly", "unavailable", 2)
	}
	id := &room.Identity{Session: claims.Session, User: claims.User, Meta: claims.Meta, Rooms: claims.Rooms}
	patterns := append(append([]string(nil), claims.Allow...), claims.Rooms...)
	if rt != nil {
		id.Route = rt.Path
		id.Rooms = append(id.Rooms, rt.Rooms...)
		patterns = append(append(patterns, rt.Allow...), rt.Rooms...)
	}
	// Claims were validated at mint time, so Compile cannot fail here
	// unless the bucket was written by something else.
	if id.Allow, err = names.Compile(patterns); err != nil {
		return nil, reject(401, "unauthorized", "connection key carries invalid room patterns: mint it again", "key", 0)
	}
	return &session{n: n, id: id}, nil
}

// hookRequest is the body of rc.auth.connect (README: "Auth hook").
type hookRequest struct {
	Path    string            `json:"path"`
	Query   string            `json:"query,omitempty"`
	Origin  string            `json:"origin,omitempty"`
	Cookies string            `json:"cookies,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Remote  string            `json:"remote"`
	Node    string            `json:"node"`
}

// hookAnswer is the app's answer on rc.auth.connect.
type hookAnswer struct {
	Allow      bool            `json:"allow"`
	Deny       bool            `json:"deny"`
	Code       int             `json:"code"`
	Reason     string          `json:"reason"`
	User       string          `json:"user"`
	Meta       json.RawMessage `json:"meta"`
	Session    string          `json:"session"`
	Rooms      []string        `json:"rooms"`
	AllowRooms []string        `json:"allow_rooms"`
}

func (n *Node) hook(ctx context.Context, r *loop.Request, rt *route, ip netip.Addr) (loop.Handler, *loop.Rejection) {
	req := hookRequest{Path: r.Path, Query: r.RawQuery, Origin: r.Origin, Cookies: r.Header["Cookie"],
		Remote: r.Remote.String(), Node: n.opts.NodeID, Headers: map[string]string{}}
	if ip != r.Remote.Addr().Unmap() { // the client behind a trusted proxy
		req.Remote = ip.String()
	}
	// Only the route's allow-list leaves the node (Route.Headers); the
	// loop's header names are canonical.
	forward := rt.Headers
	if len(forward) == 0 {
		forward = DefaultHookHeaders
	}
	for _, h := range forward {
		h = textproto.CanonicalMIMEHeaderKey(h)
		if v, ok := r.Header[h]; ok {
			req.Headers[h] = v
		}
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	msg, err := n.bus.NC.RequestWithContext(ctx, n.subjects.AuthConnect(), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		n.log.Warn("auth hook has no responder", "route", rt.Path)
		return nil, reject(503, "unavailable", "the app's auth hook is not running: retry shortly", "hook", 2)
	case err != nil:
		n.log.Warn("auth hook failed", "route", rt.Path, "err", err)
		return nil, reject(503, "unavailable", "the app's auth hook did not answer in time: retry shortly", "hook", 2)
	}
	var a hookAnswer
	if err := json.Unmarshal(msg.Data, &a); err != nil || (!a.Allow && !a.Deny) {
		n.log.Warn("auth hook answered garbage", "route", rt.Path, "err", err)
		return nil, reject(503, "unavailable", "the app's auth hook gave an invalid answer", "hook", 2)
	}
	if a.Deny || !a.Allow {
		code := a.Code
		if code != 401 && code != 403 {
			code = 403
		}
		reason := a.Reason
		if reason == "" {
			reason = "refused by the app"
		}
		return nil, reject(code, map[int]string{401: "unauthorized", 403: "forbidden"}[code], reason, "hook", 0)
	}
	id := &room.Identity{Session: a.Session, User: a.User, Meta: a.Meta, Route: rt.Path}
	rooms := append(append([]string(nil), rt.Rooms...), a.Rooms...)
	for _, rm := range rooms {
		if !names.ValidRoom(rm) {
			return nil, reject(503, "unavailable", "the app's auth hook named an invalid room", "hook", 0)
		}
	}
	id.Rooms = rooms
	allow, err := names.Compile(append(append(append([]string(nil), rt.Allow...), a.AllowRooms...), rooms...))
	if err != nil || (a.Session != "" && !names.ValidToken(a.Session)) || (len(a.Meta) > 0 && !json.Valid(a.Meta)) {
		return nil, reject(503, "unavailable", "the app's auth hook gave an invalid answer", "hook", 0)
	}
	id.Allow = allow
	return &session{n: n, id: id}, nil
}

// originAllowed checks Origin against --origins. With no list, browsers may
// connect only from the node's own host (no Origin header: not a browser,
// allowed). "*" allows every origin; an entry may use one "*" wildcard, as
// in https://*.example.com.
func (n *Node) originAllowed(r *loop.Request) bool {
	o := r.Origin
	if o == "" {
		return true
	}
	if len(n.opts.Origins) == 0 {
		u, err := url.Parse(o)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, allowed := range n.opts.Origins {
		if allowed == "*" || strings.EqualFold(allowed, o) {
			return true
		}
		if pre, suf, ok := strings.Cut(allowed, "*"); ok &&
			len(o) >= len(pre)+len(suf) && strings.EqualFold(o[:len(pre)], pre) && strings.EqualFold(o[len(o)-len(suf):], suf) {
			return true
		}
	}
	return false
}

// reject builds a refusal with the JSON body every roomcast HTTP error has.
func reject(status int, code, message, reason string, retryAfter int) *loop.Rejection {
	return &loop.Rejection{Status: status, Body: errorBody(code, message), Reason: reason, RetryAfter: retryAfter}
}

func errorBody(code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return b
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// session adapts a room.Session to the loop's Handler. id is dropped once
// the session is open, so only room.Session holds the identity.
type session struct {
	n      *Node
	id     *room.Identity
	s      *room.Session
	ip     netip.Addr // the client's, counted by the per-IP limit
	remote string     // the client's address for events; dropped at open
}

func (h *session) OnOpen(c *loop.Conn) {
	h.n.limits.opened(h.ip)
	h.id.Remote = h.remote
	h.s = h.n.hub.Open(*h.id, c)
	h.id, h.remote = nil, ""
}

func (h *session) OnMessage(_ *loop.Conn, op frame.Opcode, data []byte) {
	if op == frame.OpText {
		h.s.Receive(data)
		return
	}
	h.s.ReceiveBinary(data)
}

func (h *session) OnClose(c *loop.Conn, code uint16) {
	h.n.limits.closed(h.ip)
	if h.s != nil {
		h.s.Closed(code)
	}
}
