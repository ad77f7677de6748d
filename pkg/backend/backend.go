package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Headers and close codes of the roomcast subjects (README, subject table);
// pkg/room uses the same names on the node side.
const (
	// HeaderEvent names the event of a room or direct message, or of a
	// client's send; absent means "message".
	HeaderEvent = "Rc-Event"
	// HeaderFrom is the sending session of a room message.
	HeaderFrom = "Rc-From"
	// HeaderUser, HeaderSession and HeaderMeta say who sent a send or rpc.
	HeaderUser    = "Rc-User"
	HeaderSession = "Rc-Session"
	HeaderMeta    = "Rc-Meta"
	// HeaderError on an rpc answer makes it an `error` for the client: the
	// value is the code, the body the message.
	HeaderError = "Rc-Error"
	// HeaderProbe marks a node's interest probe on rc.events.<kind>
	// (empty body): ignore it.
	HeaderProbe = "Rc-Probe"

	// DefaultPrefix is the first token of every subject.
	DefaultPrefix = "rc"

	// CloseKeyExpired is the close code a Use socket gets when its key
	// expired before the browser connected with it (DESIGN.md: 4001 key
	// invalid, expired or used).
	CloseKeyExpired = 4001
	// CloseServiceRestart is what Close gives the sockets a Backend owns,
	// so their clients reconnect (and get a socket from a live replica).
	CloseServiceRestart = 1012
)

// Defaults of Options; each says why.
const (
	// DefaultRequestTimeout bounds rc.keys.mint and control requests: a
	// mint is one JetStream write, far below this on a healthy cluster.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultExpiryGrace is how long after its key's expiry a socket that
	// never connected is closed with 4001: the node redeems a key up to
	// its expiry, and its connect event may take a moment to arrive.
	DefaultExpiryGrace = 2 * time.Second
	// DefaultCloseTimeout is how long Socket.Close waits for the node's
	// close event before reporting the close itself.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultGather is how long Kick and CloseRoom collect answers from
	// the nodes: each node that acted answers, within a round trip.
	DefaultGather = 250 * time.Millisecond
	// inboxSize is the channel behind every subscription of a Backend: a
	// burst this large is absorbed while socket goroutines catch up; past
	// it nats.go drops messages (a slow consumer, logged).
	inboxSize = 1 << 16
)

// Options configure a Backend. The zero value works with a node's defaults.
type Options struct {
	// Prefix is the subjects' first token; empty means DefaultPrefix.
	Prefix string
	// PublicURL is where browsers reach the nodes, e.g.
	// "wss://rt.example.com"; Use returns the key's path resolved against
	// it (http becomes ws, https wss). Empty: Use returns the path
	// "/_/connect/<key>" for the caller to complete.
	PublicURL string
	// RequestTimeout bounds requests whose context has no deadline; 0
	// means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// ExpiryGrace; 0 means DefaultExpiryGrace.
	ExpiryGrace time.Duration
	// CloseTimeout; 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Gather; 0 means DefaultGather.
	Gather time.Duration
	// Logger receives handler panics and dropped messages; nil discards.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.ExpiryGrace <= 0 {
		o.ExpiryGrace = DefaultExpiryGrace
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.Gather <= 0 {
		o.Gather = DefaultGather
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrClosed is returned by the methods of a closed Backend or Socket.
var ErrClosed = errors.New("backend: closed")

// Error is a refusal with a wire error code (bad_request, forbidden,
// not_found, unavailable, timeout, ...) and a message for people: what a
// node answered, or what an rpc handler returns to refuse a call.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Claims are what a minted key grants (README, "Connecting").
type Claims struct {
	// User is the app's user id; it must be a valid subject token list
	// (rc.user.<user>): [A-Za-z0-9_-:@=] in dot-separated tokens.
	User string
	// Meta is any JSON value (≤ 4 KiB encoded), shown to peers in presence;
	// a json.RawMessage is sent as is.
	Meta any
	// Rooms are joined on connect; Allow are the room patterns the session
	// may join and publish to (NATS wildcards).
	Rooms, Allow []string
	// Session pre-assigns the session id; empty means a generated one.
	Session string
	// TTL is the key's lifetime; 0 means the node's --key-ttl.
	TTL time.Duration
}

// Minted is a freshly minted key, as rc.keys.mint answers.
type Minted struct {
	Key       string    `json:"key"`
	URL       string    `json:"url"`
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Backend owns per-request sockets and talks to the nodes over one NATS
// connection, which it does not close. Safe for concurrent use.
type Backend struct {
	nc  *nats.Conn
	o   Options
	log *slog.Logger
	in  chan *nats.Msg // every subscription of the Backend, in arrival order

	mu      sync.Mutex
	sockets map[string]*Socket
	early   map[string]earlyClose // closed before connecting: kick on connect
	subs    []*nats.Subscription
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type earlyClose struct {
	code   int
	reason string
	until  time.Time
}

// New subscribes to the lifecycle events that sockets need (connect,
// close, error) and returns a Backend. nc must stay open until Close.
func New(nc *nats.Conn, o Options) (*Backend, error) {
	if nc == nil {
		return nil, errors.New("backend: New needs a NATS connection")
	}
	o.setDefaults()
	b := &Backend{nc: nc, o: o, log: o.Logger, in: make(chan *nats.Msg, inboxSize),
		sockets: map[string]*Socket{}, early: map[string]earlyClose{}, done: make(chan struct{})}
	for _, kind := range []string{"connect", "close", "error"} {
		sub, err := nc.ChanSubscribe(b.subject("events", kind), b.in)
		if err != nil {
			b.unsubscribe()
			return nil, fmt.Errorf("backend: subscribe to %s events: %w", kind, err)
		}
		b.subs = append(b.subs, sub)
	}
	// The node must know of these subscriptions before any key is minted.
	if err := nc.FlushTimeout(o.RequestTimeout); err != nil {
		b.unsubscribe()
		return nil, fmt.Errorf("backend: NATS: %w", err)
	}
	b.wg.Add(1)
	go b.route()
	return b, nil
}

func (b *Backend) subject(kind, name string) string { return b.o.Prefix + "." + kind + "." + name }

func (b *Backend) unsubscribe() {
	for _, s := range b.subs {
		_ = s.Unsubscribe()
	}
}

// route hands each message to its socket, in the order NATS delivered
// them: a client's send before its close, whatever the subjects. One
// goroutine for the Backend; it only queues, so handlers never block it.
func (b *Backend) route() {
	defer b.wg.Done()
	for {
		select {
		case <-b.done:
			return
		case m := <-b.in:
			b.dispatch(m)
		}
	}
}

// lifecycle is a node's event JSON (README, subject table).
type lifecycle struct {
	Type    string          `json:"type"`
	Session string          `json:"session"`
	User    string          `json:"user"`
	Meta    json.RawMessage `json:"meta"`
	Node    string          `json:"node"`
	Route   string          `json:"route"`
	Remote  string          `json:"remote"`
	Room    string          `json:"room"`
	Code    json.RawMessage `json:"code"` // a number for close, a string for error
	Reason  string          `json:"reason"`
	Message string          `json:"message"`
	At      int64           `json:"at"`
}

func (b *Backend) dispatch(m *nats.Msg) {
	if id, ok := strings.CutPrefix(m.Subject, b.o.Prefix+".send."); ok {
		if s := b.socket(id); s != nil {
			s.do(func() { s.received(m) })
		}
		return
	}
	if m.Header.Get(HeaderProbe) != "" || len(m.Data) == 0 {
		return
	}
	var ev lifecycle
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Session == "" {
		return
	}
	s := b.socket(ev.Session)
	if s == nil {
		if ev.Type == "connect" {
			b.kickEarly(ev.Session)
		}
		return
	}
	switch ev.Type {
	case "connect":
		s.do(func() { s.opened(&ev) })
	case "close":
		var code int
		_ = json.Unmarshal(ev.Code, &code)
		s.do(func() { s.finish(code, ev.Reason, true) })
	case "error":
		var code string
		_ = json.Unmarshal(ev.Code, &code)
		s.do(func() { s.errored(code, ev.Message) })
	}
}

func (b *Backend) socket(id string) *Socket {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sockets[id]
}

func (b *Backend) forget(s *Socket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sockets[s.id] == s {
		delete(b.sockets, s.id)
	}
}

// kickEarly closes a session whose socket was closed before it connected.
func (b *Backend) kickEarly(id string) {
	b.mu.Lock()
	e, ok := b.early[id]
	delete(b.early, id)
	now := time.Now()
	for k, v := range b.early { // keep the map small: expired keys cannot connect
		if now.After(v.until) {
			delete(b.early, k)
		}
	}
	b.mu.Unlock()
	if ok && now.Before(e.until) {
		_ = b.publishJSON(b.subject("control", "kick"), map[string]any{"session": id, "code": e.code, "reason": e.reason})
	}
}

// Use mints a one-time key for a new session, runs handler with its socket
// (before the key exists, so the handler's callbacks miss nothing), and
// returns the URL the browser connects with. See the package doc.
func (b *Backend) Use(ctx context.Context, c Claims, handler func(*Socket)) (string, error) {
	if handler == nil {
		return "", errors.New("backend: Use needs a handler")
	}
	if c.Session == "" {
		c.Session = nuid.Next()
	}
	if !validToken(c.Session) {
		return "", &Error{Code: "bad_request", Message: fmt.Sprintf("session %q is invalid: use 1–128 chars of [A-Za-z0-9_-:@=], no dots", c.Session)}
	}
	s := newSocket(b, c.Session, c.User)
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return "", ErrClosed
	case b.sockets[s.id] != nil:
		b.mu.Unlock()
		return "", &Error{Code: "bad_request", Message: fmt.Sprintf("session %q already has a socket in this back-end", s.id)}
	}
	b.sockets[s.id] = s
	b.mu.Unlock()
	sub, err := b.nc.ChanSubscribe(b.subject("send", s.id), b.in)
	if err != nil {
		b.forget(s)
		return "", fmt.Errorf("backend: subscribe to the socket's messages: %w", err)
	}
	s.sub = sub
	if err := s.run(handler); err != nil {
		s.do(func() { s.finish(1011, "handler failed", false) })
		return "", err
	}
	// The mint request leaves on the same connection after the SUB, so
	// the server has the subscription before any browser holds the key.
	minted, err := b.Mint(ctx, c)
	if err != nil {
		s.do(func() {
			s.errored("mint_failed", err.Error())
			s.finish(1011, "no key: "+err.Error(), false)
		})
		return "", err
	}
	s.setExpiry(time.Until(minted.ExpiresAt) + b.o.ExpiryGrace)
	return minted.URL, nil
}

func (b *Backend) publicURL(path string) string {
	if b.o.PublicURL == "" {
		return path
	}
	base, err := url.Parse(b.o.PublicURL)
	if err != nil {
		return path
	}
	u := base.ResolveReference(&url.URL{Path: path})
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	return u.String()
}

// Mint mints a one-time key over rc.keys.mint without a socket: for
// sessions this back-end does not need to follow. The URL is resolved
// against Options.PublicURL.
func (b *Backend) Mint(ctx context.Context, c Claims) (Minted, error) {
	body := map[string]any{"user": c.User, "rooms": c.Rooms, "allow": c.Allow, "session": c.Session}
	if c.Meta != nil {
		meta, err := encode(c.Meta)
		if err != nil {
			return Minted{}, fmt.Errorf("backend: meta: %w", err)
		}
		body["meta"] = json.RawMessage(meta)
	}
	if c.TTL > 0 {
		body["ttl"] = c.TTL.String()
	}
	var m Minted
	if err := b.request(ctx, b.o.Prefix+".keys.mint", body, &m); err != nil {
		return Minted{}, err
	}
	if m.URL == "" || m.Session == "" {
		return Minted{}, &Error{Code: "unavailable", Message: "rc.keys.mint answered without url or session"}
	}
	m.URL = b.publicURL(m.URL)
	return m, nil
}

// request sends body as JSON and decodes the answer into v; an answer
// {"error":{code,message}} is returned as *Error.
func (b *Backend) request(ctx context.Context, subject string, body, v any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.o.RequestTimeout)
		defer cancel()
	}
	msg, err := b.nc.RequestWithContext(ctx, subject, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &Error{Code: "unavailable", Message: "nobody answers " + subject + ": is a roomcast node running on this NATS?"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &Error{Code: "timeout", Message: "no answer on " + subject + " in time"}
	case err != nil:
		return fmt.Errorf("backend: %s: %w", subject, err)
	}
	var e struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(msg.Data, &e) == nil && e.Error != nil {
		return e.Error
	}
	if err := json.Unmarshal(msg.Data, v); err != nil {
		return &Error{Code: "unavailable", Message: fmt.Sprintf("%s answered %q, not JSON", subject, cutText(msg.Data, 80))}
	}
	return nil
}

// Close closes every socket this Backend owns with CloseServiceRestart
// (1012: their clients reconnect and get a socket from a live replica),
// reports the close to their handlers and unsubscribes. The NATS connection
// stays open.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	sockets := make([]*Socket, 0, len(b.sockets))
	for _, s := range b.sockets {
		sockets = append(sockets, s)
	}
	b.mu.Unlock()
	for _, s := range sockets {
		if s.State() == Open {
			_ = b.publishJSON(b.subject("control", "kick"), map[string]any{"session": s.id, "code": CloseServiceRestart, "reason": "service restart"})
		}
		s.do(func() { s.finish(CloseServiceRestart, "service restart", false) })
	}
	for _, s := range sockets {
		s.wait()
	}
	b.unsubscribe()
	close(b.done)
	b.wg.Wait()
	return b.nc.FlushTimeout(b.o.RequestTimeout)
}

// Publish sends data to every session in room, on every node, as event
// ("" means "message"), as the server (no sender).
func (b *Backend) Publish(room, event string, data any) error {
	return b.publish(b.subject("room", room), event, "", data)
}

// SendTo sends a direct message to one session (rc.session.<id>).
func (b *Backend) SendTo(session, event string, data any) error {
	return b.publish(b.subject("session", session), event, "", data)
}

// SendToUser sends a direct message to every session of user
// (rc.user.<user>).
func (b *Backend) SendToUser(user, event string, data any) error {
	return b.publish(b.subject("user", user), event, "", data)
}

func (b *Backend) publish(subject, event, from string, data any) error {
	return publish(b.nc, subject, event, from, data)
}

func publish(nc *nats.Conn, subject, event, from string, data any) error {
	body, err := encode(data)
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	if event != "" {
		m.Header.Set(HeaderEvent, event)
	}
	if from != "" {
		m.Header.Set(HeaderFrom, from)
	}
	return nc.PublishMsg(m)
}

func (b *Backend) publishJSON(subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.nc.Publish(subject, data)
}

// encode turns a value into a message body: json.RawMessage and []byte as
// they are (a body that is not JSON reaches clients as a string), nil as
// null, anything else (strings included) as JSON.
func encode(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		return x, nil
	case []byte:
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("backend: data is not JSON-encodable: %w", err)
	}
	return b, nil
}

// validToken reports whether s is one NATS subject token of roomcast's
// alphabet (session ids).
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-:@=", c) >= 0) {
			return false
		}
	}
	return true
}

// cutText shortens b for an error message.
func cutText(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
