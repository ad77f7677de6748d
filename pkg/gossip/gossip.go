package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/roomcast/roomcast/pkg/metrics"
)

// Defaults for Options; each comment says why.
const (
	// DefaultProbeInterval is memberlist's failure-detection period; every
	// other timing derives from it (config.go has the arithmetic). 500 ms
	// finds a dead node in about 3 s on a LAN.
	DefaultProbeInterval = 500 * time.Millisecond
	// DefaultRejoinInterval is how often the rejoin loop looks for seeds
	// and failed nodes to join; each address then backs off on its own.
	DefaultRejoinInterval = time.Second
	// DefaultLeaveTimeout bounds each step of Close: on a LAN a broadcast
	// is done in a few gossip rounds (0.2–0.4 s measured), and a stuck
	// leave must not eat the drain grace.
	DefaultLeaveTimeout = time.Second
)

// Listener hears membership changes. Calls are made one at a time, in the
// order memberlist reported them, on a goroutine of the Cluster (never on
// memberlist's own, which hold its locks): a slow Listener delays later
// calls but never gossip. The local node is never reported.
// *presence.Tracker implements it.
type Listener interface {
	// NodeAlive: node joined, or its metadata changed; incarnation is the
	// one it publishes (0 if unknown). A new incarnation is a restart.
	NodeAlive(node string, incarnation uint64)
	// NodeFailed: the failure detector declared node dead (it crashed, or
	// cannot be reached).
	NodeFailed(node string)
	// NodeGone: node left gracefully (Close).
	NodeGone(node string)
}

// Options configure a Cluster. Node, Bind and Listener are required.
type Options struct {
	// Node is this node's id, unique in the cluster: its memberlist name.
	Node string
	// Incarnation identifies this run of the node (presence.Tracker's
	// Incarnation); it is published in the node's metadata so that the
	// others see a restart as soon as it joins.
	Incarnation uint64
	// Bind is the host:port memberlist listens on, UDP and TCP. An empty
	// or 0.0.0.0 host binds every interface and advertises a private IP;
	// port 0 picks a free port (see Addr).
	Bind string
	// Join lists seeds: host:port (the port defaults to Bind's). A DNS name
	// joins every address it resolves to, such as a Kubernetes headless
	// Service; names are resolved again on every attempt, and attempts go
	// on until a seed answers.
	Join []string
	// Advertise is the host:port other nodes reach this one at, when that
	// is not Bind's: behind NAT, or in a container whose port is
	// published elsewhere. A host name is resolved once, at Start. Empty:
	// Bind's address, or with an unspecified host a private IP memberlist
	// picks.
	Advertise string
	// Keys encrypt and authenticate gossip (AES-GCM; 16, 24 or 32 bytes
	// each; ParseKeys reads them from text): the first seals what this
	// node sends, any of them opens what it receives, and anything that
	// none opens or that is not sealed is dropped (keys.go). Empty:
	// plaintext, and anyone who reaches Bind can join.
	Keys [][]byte
	// Listener hears the changes.
	Listener Listener
	// Logger receives membership changes at info/warn and memberlist's own
	// log at debug; nil discards.
	Logger *slog.Logger
	// Metrics counts what memberlist sees of other nodes (PeerEvents,
	// source gossip); nil means an unregistered set. The count of nodes
	// alive is Peers.
	Metrics *metrics.Metrics
	// ProbeInterval scales every memberlist timing (config.go); 0 means
	// DefaultProbeInterval. Tests make it shorter.
	ProbeInterval time.Duration
	// RejoinInterval is the rejoin loop's period; 0 means
	// DefaultRejoinInterval.
	RejoinInterval time.Duration
	// LeaveTimeout bounds each of Close's two steps (announce the leave
	// in the metadata, then leave); 0 means DefaultLeaveTimeout.
	LeaveTimeout time.Duration

	// Test hooks: lookup resolves seed names (nil: net.DefaultResolver);
	// wrap wraps the network transport.
	lookup func(ctx context.Context, host string) ([]net.IP, error)
	wrap   func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.RejoinInterval <= 0 {
		o.RejoinInterval = DefaultRejoinInterval
	}
	if o.LeaveTimeout <= 0 {
		o.LeaveTimeout = DefaultLeaveTimeout
	}
	if o.lookup == nil {
		o.lookup = func(ctx context.Context, host string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", host)
		}
	}
}

// Cluster is this node's membership in the gossip cluster. Safe for
// concurrent use.
type Cluster struct {
	o    Options
	log  *slog.Logger
	ml   *memberlist.Memberlist
	port int // the bound port, also the default port of seeds

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	// mu guards the event queue (filled by memberlist's callbacks, emptied
	// by deliver) and the failed nodes the rejoin loop chases.
	mu     sync.Mutex
	queue  []event
	signal chan struct{} // one pending wake-up for deliver
	failed map[string]*retry

	// alive mirrors memberlist's alive members, from its callbacks: the
	// Nodes memberlist itself hands out change under its lock, so reading
	// them later races. Guarded by mu.
	alive map[string]event
	self  string // our advertised host:port

	delegate *delegate
	// leaving: nodes that announced a graceful leave; only deliver uses it.
	leaving map[string]bool
	// peers: what deliver told the Listener of each node, for
	// roomcast_peer_events_total; only deliver uses it (events.go).
	peers  map[string]*peer
	events metrics.PeerCounters
}

// Start binds memberlist, starts the goroutines that deliver events and
// rejoin, and tries the seeds at once without waiting for them: a node
// must start even when it is the first (or its seeds are not up yet).
func Start(o Options) (*Cluster, error) {
	if o.Node == "" {
		return nil, errors.New("gossip: Options.Node is required")
	}
	if o.Listener == nil {
		return nil, errors.New("gossip: Options.Listener is required")
	}
	if err := checkKeys(o.Keys); err != nil {
		return nil, err
	}
	o.setDefaults()
	host, port, err := splitBind(o.Bind)
	if err != nil {
		return nil, err
	}
	var advHost string
	var advPort int
	if o.Advertise != "" {
		advHost, advPort, err = splitAdvertise(o.Advertise, net.ParseIP(host).To4() != nil)
		if err != nil {
			return nil, err
		}
	}
	c := &Cluster{
		o:       o,
		log:     o.Logger,
		done:    make(chan struct{}),
		signal:  make(chan struct{}, 1),
		failed:  make(map[string]*retry),
		leaving: make(map[string]bool),
		alive:   make(map[string]event),
		peers:   make(map[string]*peer),
		events:  o.Metrics.PeerEventsOf(metrics.SourceGossip),
	}
	c.delegate = &delegate{c: c}
	m := encodeMeta(o.Node, o.Incarnation, false)
	c.delegate.meta.Store(&m)
	conf, err := c.config(host, port)
	if err != nil {
		return nil, err
	}
	c.port = conf.BindPort
	if advHost != "" {
		conf.AdvertiseAddr, conf.AdvertisePort = advHost, advPort
	}
	ip, aport, err := conf.Transport.FinalAdvertiseAddr(conf.AdvertiseAddr, conf.AdvertisePort)
	if err != nil {
		_ = conf.Transport.Shutdown()
		return nil, fmt.Errorf("gossip: %s: %w (bind a specific address, or advertise one)", o.Bind, err)
	}
	c.self = net.JoinHostPort(ip.String(), strconv.Itoa(aport))
	if len(o.Keys) == 0 && public(ip) {
		c.log.Warn("gossip: advertising a public address without encryption: anyone who reaches it can join and declare nodes dead; set --gossip-key",
			"addr", c.self)
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = conf.Transport.Shutdown()
		return nil, fmt.Errorf("gossip: start on %s: %w", o.Bind, err)
	}
	c.ml = ml
	c.wg.Add(2)
	go c.deliver()
	go c.rejoin()
	return c, nil
}

// splitBind parses Bind; a host name is resolved to its first address,
// since memberlist binds IP addresses.
func splitBind(bind string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(bind)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: bind address %q: want host:port, e.g. 0.0.0.0:7946", bind)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("gossip: bind address %q: bad port", bind)
	}
	switch {
	case h == "":
		h = "0.0.0.0"
	case net.ParseIP(h) == nil:
		ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", h)
		if err != nil || len(ips) == 0 {
			return "", 0, fmt.Errorf("gossip: bind address %q: cannot resolve %s: %v", bind, h, err)
		}
		h = ips[0].String()
	}
	return h, port, nil
}

// splitAdvertise parses Options.Advertise for memberlist, which wants an
// IP: a host name is resolved once, here, preferring the family of the
// bind address (v4 says whether that is IPv4).
func splitAdvertise(adv string, v4 bool) (ip string, port int, err error) {
	h, p, err := net.SplitHostPort(adv)
	if err != nil || h == "" {
		return "", 0, fmt.Errorf("gossip: advertise address %q: want host:port, the address other nodes reach this one at, e.g. 203.0.113.7:7946", adv)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("gossip: advertise address %q: the port must be 1-65535", adv)
	}
	if a := net.ParseIP(h); a != nil {
		if a.IsUnspecified() {
			return "", 0, fmt.Errorf("gossip: advertise address %q: %s is no address other nodes can reach; give this node's own", adv, h)
		}
		return a.String(), port, nil
	}
	ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", h)
	if err != nil || len(ips) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		return "", 0, fmt.Errorf("gossip: advertise address %q: cannot resolve %s: %v", adv, h, err)
	}
	for _, a := range ips {
		if (a.To4() != nil) == v4 {
			return a.String(), port, nil
		}
	}
	return ips[0].String(), port, nil
}

// cgnat is RFC 6598 shared address space (carrier NAT, Tailscale): not
// private by net.IP.IsPrivate, not reachable from the internet either.
var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// public reports whether ip may be reachable from outside the site.
func public(ip net.IP) bool {
	return !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !cgnat.Contains(ip)
}

// Addr is the address other nodes reach this one at (host:port).
func (c *Cluster) Addr() string { return c.self }

// Member is one alive node as memberlist knows it.
type Member struct {
	Node        string
	Incarnation uint64
	Addr        string
}

// Members returns the nodes memberlist considers alive (or suspect), this
// one included.
func (c *Cluster) Members() []Member {
	ms := []Member{{Node: c.o.Node, Incarnation: c.o.Incarnation, Addr: c.self}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.alive {
		ms = append(ms, Member{Node: e.node, Incarnation: decodeMeta(e.meta).Inc, Addr: e.addr})
	}
	return ms
}

// Peers returns how many other nodes memberlist considers alive (or
// suspect) now (roomcast_peers); 0 once the Cluster stopped.
func (c *Cluster) Peers() int {
	select {
	case <-c.done:
		return 0
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.alive)
}

// Close leaves the cluster gracefully: the others hear NodeGone at once
// instead of finding the node dead seconds later. Then it stops.
// Idempotent; the Listener hears nothing more.
func (c *Cluster) Close() error { return c.stop(true) }

// Shutdown stops without leaving: the others find out by failure
// detection, as if the process had died. Idempotent.
func (c *Cluster) Shutdown() error { return c.stop(false) }

func (c *Cluster) stop(leave bool) error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		if leave {
			// First say it is a leave (see meta.Leaving), then leave.
			m := encodeMeta(c.o.Node, c.o.Incarnation, true)
			c.delegate.meta.Store(&m)
			if uerr := c.ml.UpdateNode(c.o.LeaveTimeout); uerr != nil {
				c.log.Debug("gossip: announce leave", "err", uerr)
			}
			if lerr := c.ml.Leave(c.o.LeaveTimeout); lerr != nil {
				err = fmt.Errorf("gossip: leave: %w", lerr)
			}
		}
		if serr := c.ml.Shutdown(); serr != nil && err == nil {
			err = fmt.Errorf("gossip: shutdown: %w", serr)
		}
		// The rejoin loop may be in a join: it ends within TCPTimeout.
		c.wg.Wait()
	})
	return err
}
