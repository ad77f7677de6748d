package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// Queue groups of the services; replicas of a back-end share each request.
const (
	RPCQueue  = "roomcast-rpc"
	AuthQueue = "roomcast-auth"
)

// maxInFlight bounds the requests one Service handles at once; past it,
// NATS holds the rest in the subscription (and other replicas get them).
const maxInFlight = 256

// Request is one client `rpc`, as a node forwards it on rc.rpc.<method>.
type Request struct {
	Method string
	// Session, User and Meta say who called (headers Rc-Session, Rc-User,
	// Rc-Meta).
	Session, User string
	Meta          json.RawMessage
	// Data is the rpc's data as the client sent it (JSON, or empty).
	Data json.RawMessage
	// Msg is the NATS request itself.
	Msg *nats.Msg
}

// Decode unmarshals the request's data into v.
func (r *Request) Decode(v any) error {
	if len(r.Data) == 0 {
		return &Error{Code: "bad_request", Message: "rpc " + r.Method + " needs data"}
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		return &Error{Code: "bad_request", Message: fmt.Sprintf("rpc %s: data: %v", r.Method, err)}
	}
	return nil
}

// Handler answers one rpc: the value becomes the client's `reply` (encoded
// as Socket.Send encodes), an *Error its `error` with that code and
// message; any other error reaches the client as `unavailable` with a
// generic message (details stay in your log).
type Handler func(ctx context.Context, r *Request) (any, error)

// Service is a running subscription of Serve or ServeAuth.
type Service struct {
	sub    *nats.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}
	wg     sync.WaitGroup
	log    *slog.Logger
}

// Stop stops taking requests, cancels the contexts of those in progress
// and waits for them.
func (s *Service) Stop() error {
	err := s.sub.Drain()
	s.cancel()
	s.wg.Wait()
	return err
}

// Serve answers rpc method (rc.rpc.<method>, prefix "rc") in queue group
// RPCQueue, each request on its own goroutine (at most 256 at once).
func Serve(nc *nats.Conn, method string, h Handler) (*Service, error) {
	return serve(nc, DefaultPrefix+".rpc."+method, RPCQueue, nil, func(ctx context.Context, m *nats.Msg) *nats.Msg {
		return answerRPC(ctx, method, m, h, nil)
	})
}

// Serve is the package's Serve with the Backend's prefix and logger.
func (b *Backend) Serve(method string, h Handler) (*Service, error) {
	return serve(b.nc, b.subject("rpc", method), RPCQueue, b.log, func(ctx context.Context, m *nats.Msg) *nats.Msg {
		return answerRPC(ctx, method, m, h, b.log)
	})
}

func serve(nc *nats.Conn, subject, queue string, log *slog.Logger, answer func(context.Context, *nats.Msg) *nats.Msg) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{slots: make(chan struct{}, maxInFlight), log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sub, err := nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		s.slots <- struct{}{} // blocks this subscription only: backpressure
		s.wg.Add(1)
		go func() {
			defer func() { <-s.slots; s.wg.Done() }()
			r := answer(s.ctx, m)
			if r == nil {
				return
			}
			if err := m.RespondMsg(r); err != nil {
				log.Warn("backend: answer not sent", "subject", subject, "err", err)
			}
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("backend: subscribe to %s: %w", subject, err)
	}
	s.sub = sub
	// Requests reach this service once Serve returns.
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("backend: NATS: %w", err)
	}
	return s, nil
}

func answerRPC(ctx context.Context, method string, m *nats.Msg, h Handler, log *slog.Logger) (reply *nats.Msg) {
	req := &Request{Method: method, Session: m.Header.Get(HeaderSession), User: m.Header.Get(HeaderUser),
		Meta: json.RawMessage(m.Header.Get(HeaderMeta)), Data: m.Data, Msg: m}
	reply = nats.NewMsg(m.Reply)
	fail := func(code, msg string) *nats.Msg {
		reply.Header.Set(HeaderError, code)
		reply.Data = []byte(msg)
		return reply
	}
	defer func() {
		if v := recover(); v != nil {
			if log != nil {
				log.Error("backend: rpc handler panicked", "method", method, "err", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			reply = fail("unavailable", "rpc "+method+" failed")
		}
	}()
	v, err := h(ctx, req)
	var e *Error
	switch {
	case errors.As(err, &e):
		return fail(e.Code, e.Message)
	case err != nil:
		if log != nil {
			log.Warn("backend: rpc failed", "method", method, "session", req.Session, "err", err)
		}
		return fail("unavailable", "rpc "+method+" failed")
	}
	body, err := encode(v)
	if err != nil {
		return fail("unavailable", "rpc "+method+" failed: the answer is not JSON-encodable")
	}
	reply.Data = body
	return reply
}

// AuthRequest is what a node asks on rc.auth.connect before upgrading a
// connection on an `auth: hook` route.
type AuthRequest struct {
	Path  string `json:"path"`
	Query string `json:"query"`
	// Origin is the Origin header; Cookies the raw Cookie header.
	Origin  string `json:"origin"`
	Cookies string `json:"cookies"`
	// Headers are the route's allow-listed request headers (canonical
	// names), by default Authorization, User-Agent, X-Forwarded-For,
	// X-Real-Ip and Accept-Language, when present.
	Headers map[string]string `json:"headers"`
	// Remote is the client's address: the TCP peer's host:port, or, when
	// the peer is one of the node's --trusted-proxies, the client's IP
	// from X-Forwarded-For / X-Real-Ip (no port). Node is the node's id.
	Remote string `json:"remote"`
	Node   string `json:"node"`
}

// Cookie returns the value of the named cookie, or "".
func (r *AuthRequest) Cookie(name string) string {
	h := http.Header{"Cookie": {r.Cookies}}
	c, err := (&http.Request{Header: h}).Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// IP is the client's address, Remote without its port. Behind a load
// balancer, start the nodes with --trusted-proxies naming it, so that
// Remote is the client's address it forwarded. The raw X-Forwarded-For
// header (when allow-listed) is not a safe substitute: its first entries
// are whatever the client sent.
func (r *AuthRequest) IP() netip.Addr {
	host, _, err := net.SplitHostPort(r.Remote)
	if err != nil {
		host = r.Remote
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// AuthAnswer is the hook's decision: Allow with who the session is, or
// Deny with an HTTP status (401 or 403) and a reason for the client.
type AuthAnswer struct {
	Allow  bool   `json:"allow,omitempty"`
	Deny   bool   `json:"deny,omitempty"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	User   string `json:"user,omitempty"`
	// Meta is any JSON value (json.RawMessage as is).
	Meta    any    `json:"meta,omitempty"`
	Session string `json:"session,omitempty"`
	// Rooms are joined on connect; AllowRooms are patterns the session may
	// join and publish to, besides the route's.
	Rooms      []string `json:"rooms,omitempty"`
	AllowRooms []string `json:"allow_rooms,omitempty"`
}

// Deny is a refusal with status 401 or 403 and a reason for the client.
func Deny(status int, reason string) AuthAnswer {
	return AuthAnswer{Deny: true, Code: status, Reason: reason}
}

// AuthFunc decides on one connection.
type AuthFunc func(ctx context.Context, r *AuthRequest) AuthAnswer

// ServeAuth answers rc.auth.connect (prefix "rc") for the routes with
// path (every hook route when path is ""). Replicas share the requests in
// a queue group per path, so several services may each answer their own
// route.
func ServeAuth(nc *nats.Conn, path string, f AuthFunc) (*Service, error) {
	return serveAuth(nc, DefaultPrefix, path, f, nil)
}

// ServeAuth is the package's ServeAuth with the Backend's prefix and logger.
func (b *Backend) ServeAuth(path string, f AuthFunc) (*Service, error) {
	return serveAuth(b.nc, b.o.Prefix, path, f, b.log)
}

func serveAuth(nc *nats.Conn, prefix, path string, f AuthFunc, log *slog.Logger) (*Service, error) {
	queue := AuthQueue
	if path != "" {
		queue += "." + strings.NewReplacer("/", "_", ".", "_", "*", "_", ">", "_", " ", "_").Replace(path)
	}
	return serve(nc, prefix+".auth.connect", queue, log, func(ctx context.Context, m *nats.Msg) *nats.Msg {
		var req AuthRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return nil // the node answers 503 after its timeout
		}
		if path != "" && req.Path != path {
			return nil // another path's group answers it
		}
		a := f(ctx, &req)
		reply := nats.NewMsg(m.Reply)
		reply.Data, _ = json.Marshal(a)
		return reply
	})
}
