package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/roomcast/roomcast/pkg/node"
)

// option is one row of the configuration table: the same name is the flag
// (--name), the env var (ROOMCAST_NAME with - → _) and the YAML key.
type option struct {
	name  string
	usage string
	value flag.Value
}

// config holds what the table fills; its zero state is node.Defaults().
type config struct {
	opts     node.Options
	config   string
	logLevel string
	logJSON  bool
	demo     string
	table    []option
}

func newConfig() *config {
	c := &config{opts: node.Defaults(), logLevel: "info", logJSON: true, demo: "auto"}
	o := &c.opts
	c.table = []option{
		{"config", "YAML file with the same keys as these flags, plus routes and history", (*stringValue)(&c.config)},
		{"listen", "HTTP and WebSocket address (host:port; port 0 picks one, logged at start)", (*stringValue)(&o.Listen)},
		{"nats", "NATS URL list (comma-separated); empty starts an embedded NATS with JetStream", (*stringValue)(&o.NATS)},
		{"nats-listen", "embedded NATS only: address for local services and roomcast-mint; none = in-process only", (*stringValue)(&o.NATSListen)},
		{"node-id", "unique node id (default: the hostname)", (*stringValue)(&o.NodeID)},
		{"api-key", "bearer key for POST /_/keys and /_/publish; empty turns them off", (*stringValue)(&o.APIKey)},
		{"origins", "allowed Origin values, comma-separated (* wildcard); empty = same host only", (*listValue)(&o.Origins)},
		{"trusted-proxies", "load balancers (CIDRs or addresses, comma-separated) whose X-Forwarded-For names the client for per-IP limits, the auth hook and events", (*listValue)(&o.TrustedProxies)},
		{"gossip-bind", "memberlist host:port for node liveness; empty = no gossip", (*stringValue)(&o.GossipBind)},
		{"gossip-join", "memberlist peers to join, comma-separated (a DNS name is fine)", (*listValue)(&o.GossipJoin)},
		{"gossip-advertise", "host:port other nodes reach this node's gossip at (NAT, containers); empty = the bound address, or a private IP when bound to 0.0.0.0", (*stringValue)(&o.GossipAdvertise)},
		{"gossip-key", "shared secret that encrypts and authenticates gossip: base64 of 16, 24 or 32 bytes (head -c 32 /dev/urandom | base64); a comma list rotates: the first encrypts, all decrypt; empty = plaintext. Prefer env ROOMCAST_GOSSIP_KEY", (*stringValue)(&o.GossipKey)},
		{"presence-count-only-above", "rooms with more members get counts (session:count) instead of member lists; 0 = never", (*intValue)(&o.PresenceCountOnlyAbove)},
		{"data-dir", "embedded JetStream store; empty = a temp dir removed at exit", (*stringValue)(&o.DataDir)},
		{"key-ttl", "default lifetime of a one-time key", (*durationValue)(&o.KeyTTL)},
		{"keys-replicas", "replicas of the rc-keys bucket (3 on a NATS cluster)", (*intValue)(&o.KeysReplicas)},
		{"tls-cert", "PEM certificate: serve https:// and wss:// on --listen (reloaded when the file changes)", (*stringValue)(&o.TLSCert)},
		{"tls-key", "PEM private key for --tls-cert", (*stringValue)(&o.TLSKey)},
		{"demo", "serve the demo page and /_/demo endpoints: on, off, auto (= on with embedded NATS)", (*stringValue)(&c.demo)},
		{"ping-interval", "server ping period; a client silent for 2 periods is closed", (*durationValue)(&o.PingInterval)},
		{"handshake-timeout", "limit on the HTTP upgrade and on a stalled frame", (*durationValue)(&o.HandshakeTimeout)},
		{"max-message", "largest client message in bytes (over: close 1009)", (*intValue)(&o.MaxMessage)},
		{"max-queue", "outgoing bytes queued per connection before it is cut with 4009", (*intValue)(&o.MaxQueueBytes)},
		{"compression", "permessage-deflate when the client offers it", (*boolValue)(&o.Compression)},
		{"compression-min-size", "messages smaller than this are sent uncompressed", (*intValue)(&o.CompressionMinSize)},
		{"drain-window", "on SIGTERM, 1001 closes are spread over this window", (*durationValue)(&o.DrainWindow)},
		{"drain-grace", "on SIGTERM, the process exits within this", (*durationValue)(&o.DrainGrace)},
		{"rpc-timeout", "deadline for a client rpc answered over rc.rpc.<method>", (*durationValue)(&o.RPCTimeout)},
		{"max-rooms", "rooms one session may be in", (*intValue)(&o.MaxRooms)},
		{"max-meta", "bytes of session meta a join may set", (*intValue)(&o.MaxMeta)},
		{"max-conns", "open connections per node; 0 = the fd limit minus 256", (*intValue)(&o.MaxConns)},
		{"max-conns-per-ip", "open connections per client IP (over: 429); 0 = no limit (behind a load balancer, set --trusted-proxies too)", (*intValue)(&o.MaxConnsPerIP)},
		{"api-rate", "requests per second per IP on /_/keys, /_/publish and /_/demo/key; 0 = no limit", (*floatValue)(&o.APIRate)},
		{"rate-limit", "client messages per second per session (token bucket)", (*floatValue)(&o.RateLimit)},
		{"rate-burst", "burst of the per-session token bucket", (*intValue)(&o.RateBurst)},
		{"events", "lifecycle events on rc.events.*: auto (only while someone listens), on, off", (*stringValue)(&o.Events)},
		{"exit-on-drain", "exit once a drain requested over rc.control.drain is done (else stay up, not ready)", (*boolValue)(&o.ExitOnDrain)},
		{"log-level", "debug, info, warn or error", (*stringValue)(&c.logLevel)},
		{"log-json", "JSON logs (false: text)", (*boolValue)(&c.logJSON)},
	}
	return c
}

// load fills c with one precedence: flag > ROOMCAST_* env > YAML > default.
func (c *config) load(args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("roomcast-node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, o := range c.table {
		fs.Var(o.value, o.name, o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "roomcast-node: a roomcast edge node.\n\nEvery flag is also env ROOMCAST_<NAME> and a key of the --config YAML.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: every setting is a --flag", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The config file's own path may come from the env.
	if !set["config"] {
		if v := getenv(envName("config")); v != "" {
			c.config = v
		}
	}
	var file map[string]any
	if c.config != "" {
		b, err := os.ReadFile(c.config)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		var doc struct {
			Routes []node.Route `yaml:"routes"`
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s is not valid YAML: %w", c.config, err)
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("config file %s: routes: %w", c.config, err)
		}
		c.opts.Routes = doc.Routes
		if c.opts.History, err = decodeHistory(b); err != nil {
			return fmt.Errorf("config file %s: history: %w", c.config, err)
		}
	}
	known := map[string]bool{"routes": true, "history": true}
	for _, o := range c.table {
		known[o.name] = true
		if set[o.name] || o.name == "config" {
			continue
		}
		if v := getenv(envName(o.name)); v != "" {
			if err := o.value.Set(v); err != nil {
				return fmt.Errorf("env %s=%q: %w", envName(o.name), v, err)
			}
			continue
		}
		if v, ok := file[o.name]; ok {
			if err := o.value.Set(yamlScalar(v)); err != nil {
				return fmt.Errorf("config file %s: %s: %w", c.config, o.name, err)
			}
		}
	}
	var unknown []string
	for k := range file {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config file %s: unknown keys %s (keys are the flag names, e.g. listen, nats, routes)", c.config, strings.Join(unknown, ", "))
	}
	if c.opts.NodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --node-id and no hostname: %w", err)
		}
		c.opts.NodeID = sanitizeID(h)
	}
	switch c.demo {
	case "on", "true":
		c.opts.Demo = true
	case "off", "false":
		c.opts.Demo = false
	case "auto", "":
		c.opts.Demo = c.opts.NATS == ""
	default:
		return fmt.Errorf("--demo %q: use on, off or auto", c.demo)
	}
	return nil
}

// decodeHistory reads the `history` list of a config file strictly: a
// misspelt key in an entry (sise: 100) is an error, not a silent default.
// The other top-level keys are checked by load.
func decodeHistory(b []byte) ([]node.History, error) {
	var doc struct {
		History []node.History `yaml:"history"`
		Others  map[string]any `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w (each entry has rooms, size, ttl such as 10m, replicas)", err)
	}
	return doc.History, nil
}

func envName(name string) string {
	return "ROOMCAST_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// sanitizeID turns a hostname into a valid node id (a NATS token).
func sanitizeID(h string) string {
	b := []byte(h)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}

// yamlScalar renders a YAML value the way the flag would be typed: lists
// become comma lists.
func yamlScalar(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type listValue []string

func (l *listValue) Set(v string) error {
	*l = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
func (l *listValue) String() string { return strings.Join(*l, ",") }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a duration like 30s or 2m")
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("want a whole number")
	}
	*i = intValue(x)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type floatValue float64

func (f *floatValue) Set(v string) error {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return errors.New("want a number")
	}
	*f = floatValue(x)
	return nil
}
func (f *floatValue) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(x)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }
