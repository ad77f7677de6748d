package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/gossip"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/names"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/room"
)

// Route is a continuous WebSocket path from the config file.
type Route struct {
	// Path is the URL path, e.g. /chat.
	Path string `yaml:"path" json:"path"`
	// Auth is public (anyone), key (?key= one-time key) or hook (ask the
	// app over rc.auth.connect).
	Auth string `yaml:"auth" json:"auth"`
	// Rooms are joined on connect.
	Rooms []string `yaml:"rooms" json:"rooms"`
	// Allow are the room patterns a session on this route may join and
	// publish to (NATS wildcards). Empty: only Rooms.
	Allow []string `yaml:"allow" json:"allow"`
	// Headers are the request headers an auth: hook route forwards on
	// rc.auth.connect (Origin and Cookie always go). Empty: DefaultHookHeaders.
	Headers []string `yaml:"headers" json:"headers"`
}

// DefaultHookHeaders are the headers forwarded to the auth hook when a route
// names none: enough for bearer tokens, IP guards behind a proxy and
// localisation; nothing else leaves the node.
var DefaultHookHeaders = []string{"Authorization", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "Accept-Language"}

// Options configure a node. cmd/node fills it from flags, ROOMCAST_* env and
// the YAML file; defaults are in Defaults.
type Options struct {
	Listen     string   // HTTP and WebSocket address
	NATS       string   // NATS URL list; empty = embedded server
	NATSListen string   // embedded NATS client address, "none" = in-process only
	NodeID     string   // unique per node; default the hostname
	APIKey     string   // bearer key for /_/keys and /_/publish; empty = endpoints off
	Origins    []string // allowed Origin values; see originAllowed
	// TrustedProxies are the load balancers (CIDRs or addresses) whose
	// X-Forwarded-For / X-Real-Ip name the client; see clientip.go.
	TrustedProxies []string
	GossipBind     string        // memberlist bind address; empty = no gossip
	GossipJoin     []string      // memberlist peers
	DataDir        string        // embedded JetStream store; empty = temp dir
	KeyTTL         time.Duration // default key lifetime
	KeysReplicas   int           // replicas of the rc-keys bucket
	Routes         []Route       // continuous routes
	History        []History     // rooms that keep history (see history.go)
	Demo           bool          // serve the demo page and its endpoints
	TLSCert        string        // PEM certificate file; with TLSKey, serve https/wss (reloaded on change)
	TLSKey         string        // PEM key file
	// GossipAdvertise is the host:port other nodes reach this one's gossip
	// at, next to GossipBind (NAT, containers); empty = memberlist's choice.
	GossipAdvertise string
	// GossipKey encrypts and authenticates gossip: base64 keys, comma
	// separated, the first encrypting (gossip.ParseKeys). A secret: never
	// logged. Empty = plaintext gossip.
	GossipKey string

	PingInterval       time.Duration
	HandshakeTimeout   time.Duration
	MaxMessage         int
	MaxQueueBytes      int
	Compression        bool
	CompressionMinSize int
	DrainWindow        time.Duration // 1001s are spread over this window
	DrainGrace         time.Duration // the whole drain must end within this
	RPCTimeout         time.Duration
	MaxRooms           int     // rooms per session
	MaxMeta            int     // bytes of session meta set by join
	MaxConns           int     // open connections per node; 0 = derived from the fd limit
	MaxConnsPerIP      int     // open connections per client IP; 0 = no limit
	APIRate            float64 // requests per second per IP on /_/keys and /_/publish; 0 = no limit
	RateLimit          float64 // client messages per second per session
	RateBurst          int
	Events             string // lifecycle events: auto, on or off (room.ParseEventsMode)
	ExitOnDrain        bool   // rc.control.drain exits the process once drained

	// PresenceCountOnlyAbove: rooms with more members than this get
	// count-only presence (counts, no lists); 0 = never.
	PresenceCountOnlyAbove int

	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: a new one, served on /metrics
}

// Defaults returns the options of a node started with no flags. Each value
// is chosen so that `go run ./cmd/node` works on a laptop.
func Defaults() Options {
	return Options{
		Listen:     ":8080",
		NATSListen: "127.0.0.1:4222",
		KeyTTL:     2 * time.Minute,
		// One replica: the embedded server is one node. A NATS cluster
		// wants 3 (see the compose file and the chart).
		KeysReplicas:       1,
		PingInterval:       25 * time.Second,
		HandshakeTimeout:   10 * time.Second,
		MaxMessage:         64 << 10,
		MaxQueueBytes:      1 << 20,
		Compression:        true,
		CompressionMinSize: 256,
		// 10s of spread lets clients land evenly on the remaining nodes;
		// 30s grace matches Kubernetes' default terminationGracePeriod.
		DrainWindow: 10 * time.Second,
		DrainGrace:  30 * time.Second,
		RPCTimeout:  5 * time.Second,
		MaxRooms:    100,
		MaxMeta:     4 << 10,
		// Behind a load balancer every connection comes from its address,
		// so a per-IP cap is opt-in.
		MaxConnsPerIP: 0,
		// Back-ends mint a key per page view; 200/s per address covers a
		// busy app server and stops API-key guessing at line rate.
		APIRate: 200,
		// 50 msg/s with a burst of 100 is far above a person typing and
		// far below what hurts a node.
		RateLimit: 50,
		RateBurst: 100,
		// Past 1,000 members a list is too long to read and each change
		// costs a message per member (presence.DefaultCountOnlyAbove).
		PresenceCountOnlyAbove: presence.DefaultCountOnlyAbove,
		// Published only while a back-end listens: free when nobody does.
		Events: "auto",
	}
}

func (o *Options) validate() error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: give both or neither")
	}
	if _, err := parseProxies(o.TrustedProxies); err != nil {
		return err
	}
	if _, err := room.ParseEventsMode(o.Events); err != nil {
		return fmt.Errorf("--events: %w", err)
	}
	// Also without --gossip-bind: a key that would be refused is better
	// found now than on the day gossip is turned on.
	if _, err := gossip.ParseKeys(o.GossipKey); err != nil {
		return fmt.Errorf("--gossip-key: %w", err)
	}
	if o.NodeID == "" || !names.ValidToken(o.NodeID) {
		return fmt.Errorf("node id %q is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] (set --node-id)", o.NodeID)
	}
	if err := history.Validate(o.History); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, r := range o.Routes {
		if len(r.Path) < 2 || r.Path[0] != '/' {
			return fmt.Errorf("route %d: path %q must start with / and name something", i, r.Path)
		}
		if isReservedPath(r.Path) {
			return fmt.Errorf("route %q: paths under /_/ are roomcast's own; pick another path", r.Path)
		}
		if seen[r.Path] {
			return fmt.Errorf("route %q is configured twice", r.Path)
		}
		seen[r.Path] = true
		switch r.Auth {
		case "public", "key", "hook":
		case "":
			return fmt.Errorf("route %q: auth is missing: use public, key or hook", r.Path)
		default:
			return fmt.Errorf("route %q: auth %q is unknown: use public, key or hook", r.Path, r.Auth)
		}
		for _, room := range r.Rooms {
			if err := names.CheckRoom(room); err != nil {
				return fmt.Errorf("route %q: %w", r.Path, err)
			}
		}
		if _, err := names.Compile(r.Allow); err != nil {
			return fmt.Errorf("route %q: %w", r.Path, err)
		}
		for _, h := range r.Headers {
			if !validHeaderName(h) {
				return fmt.Errorf("route %q: header %q is not a header name: use letters, digits and -", r.Path, h)
			}
		}
	}
	return nil
}

func isReservedPath(p string) bool { return len(p) >= 3 && p[:3] == "/_/" }

// validHeaderName accepts what may be a header name in a route's headers
// list: 1–64 of [A-Za-z0-9-].
func validHeaderName(h string) bool {
	if len(h) == 0 || len(h) > 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
