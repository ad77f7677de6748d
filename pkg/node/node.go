package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/certs"
	"github.com/roomcast/roomcast/pkg/gossip"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/keys"
	"github.com/roomcast/roomcast/pkg/loop"
	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/names"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/room"
)

// Node is one running edge node.
type Node struct {
	opts     Options
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	subjects bus.Subjects
	routes   map[string]*route

	bus      *bus.Bus
	keys     *keys.Store
	tracker  *presence.Tracker
	gossip   *gossip.Cluster // nil without --gossip-bind
	history  *history.Store  // nil without history rooms
	hub      *room.Hub
	loop     *loop.Loop
	draining atomic.Bool
	limits   connLimits
	apiLimit *ipLimiter
	proxies  proxies // --trusted-proxies
	addr     atomic.Pointer[net.TCPAddr]
	ctl      *control // rc.control.* (control.go)
}

// New checks o and prepares a node; Run starts it.
func New(o Options) (*Node, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	n := &Node{
		opts:     o,
		log:      o.Logger.With("node", o.NodeID),
		registry: o.Registry,
		metrics:  metrics.New(o.Registry),
		routes:   map[string]*route{},
		ctl:      newControl(),
	}
	n.proxies, _ = parseProxies(o.TrustedProxies) // checked by validate
	n.limits = connLimits{maxTotal: o.MaxConns, maxPerIP: o.MaxConnsPerIP}
	if n.limits.maxTotal == 0 {
		n.limits.maxTotal = fdLimit() - 256
	}
	n.apiLimit = newIPLimiter(o.APIRate, int(2*o.APIRate)+1)
	for _, r := range o.Routes {
		allow, _ := names.Compile(append(append([]string(nil), r.Allow...), r.Rooms...))
		n.routes[r.Path] = &route{Route: r, allow: allow}
	}
	if o.Demo {
		n.routes[demoWSPath] = &route{Route: Route{Path: demoWSPath, Auth: "public"}, allow: names.All()}
	}
	return n, nil
}

// Addr is the bound HTTP address once Run is listening, else nil.
func (n *Node) Addr() *net.TCPAddr { return n.addr.Load() }

// Run starts the node and serves until ctx ends, then drains: readiness goes
// false, new upgrades get 503, every connection gets 1001 spread over
// DrainWindow, presence leaves are announced, and Run returns within
// DrainGrace.
func (n *Node) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.opts.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (is another node running? pick another --listen)", n.opts.Listen, err)
	}
	if err := n.start(ctx); err != nil {
		ln.Close()
		n.stopBackends()
		return err
	}
	addr := ln.Addr().(*net.TCPAddr)
	n.addr.Store(addr)
	n.log.Info("listening", "addr", addr.String(), "nats", n.bus.ClientURL(), "embedded", n.bus.Embedded())
	serveErr := make(chan error, 1)
	go func() { serveErr <- n.loop.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, loop.ErrClosed) {
			n.log.Error("serve failed", "err", err)
		}
	case <-n.ctl.exit: // drained over rc.control.drain with ExitOnDrain
	}
	return n.drain()
}

func (n *Node) start(ctx context.Context) error {
	var err error
	n.bus, err = bus.Connect(ctx, bus.Options{
		URLs: n.opts.NATS, Name: "roomcast-node " + n.opts.NodeID, NodeID: n.opts.NodeID,
		Listen: n.opts.NATSListen, DataDir: n.opts.DataDir, Logger: n.log, Metrics: n.metrics,
	})
	if err != nil {
		return err
	}
	n.keys, err = keys.NewStore(ctx, n.bus.JS, keys.StoreOptions{
		Replicas: n.opts.KeysReplicas, DefaultTTL: n.opts.KeyTTL, MaxTTL: maxKeyTTL,
		Metrics: n.metrics, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("cannot open the rc-keys bucket: %w", err)
	}
	if _, err := keys.Serve(ctx, n.bus.NC, n.subjects, n.keys, n.log); err != nil {
		return fmt.Errorf("cannot serve rc.keys.mint: %w", err)
	}
	if err := n.startHistory(ctx); err != nil {
		return err
	}
	n.tracker, err = presence.New(presence.Options{
		NC: n.bus.NC, Subjects: n.subjects, Node: n.opts.NodeID, Logger: n.log, Metrics: n.metrics,
		CountOnlyAbove: n.presenceCountOnlyAbove(),
	})
	if err != nil {
		return err
	}
	n.metrics.SetPeers(metrics.SourceHeartbeat, n.tracker.Peers)
	events, err := room.ParseEventsMode(n.opts.Events)
	if err != nil {
		return err
	}
	n.hub, err = room.New(room.Options{
		Node: n.opts.NodeID, NC: n.bus.NC, Subjects: n.subjects, Logger: n.log, Metrics: n.metrics,
		Presence: n.tracker, PingInterval: n.opts.PingInterval, MaxRoomsPerSession: n.opts.MaxRooms, MaxMeta: n.opts.MaxMeta,
		RateLimit:  room.RateLimit{PerSecond: n.opts.RateLimit, Burst: n.opts.RateBurst},
		RPCTimeout: n.opts.RPCTimeout, Events: events, History: n.history,
	})
	if err != nil {
		return err
	}
	if err := n.hub.Start(ctx); err != nil {
		return err
	}
	if err := n.startGossip(); err != nil {
		return err
	}
	if err := n.serveHistory(); err != nil {
		return err
	}
	n.catchUpHistory()
	if err := n.startControl(); err != nil {
		return err
	}
	var tlsConf *tls.Config
	if n.opts.TLSCert != "" {
		r, err := certs.New(n.opts.TLSCert, n.opts.TLSKey, n.log)
		if err != nil {
			return err
		}
		tlsConf = r.Config()
	}
	n.loop, err = loop.New(loop.Options{
		TLS:                tlsConf,
		IsUpgradePath:      n.isUpgradePath,
		Upgrade:            n.upgrade,
		HTTP:               n.routesHTTP(),
		MaxMessage:         n.opts.MaxMessage,
		MaxQueueBytes:      n.opts.MaxQueueBytes,
		PingInterval:       n.opts.PingInterval,
		HandshakeTimeout:   n.opts.HandshakeTimeout,
		Compression:        n.opts.Compression,
		CompressionMinSize: n.opts.CompressionMinSize,
		Logger:             n.log,
		Metrics:            n.metrics,
	})
	return err
}

// drain is the graceful exit; see Run.
func (n *Node) drain() error {
	n.draining.Store(true)
	n.log.Info("draining", "connections", n.loop.Conns(), "window", n.opts.DrainWindow, "grace", n.opts.DrainGrace)
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DrainGrace)
	defer cancel()
	// Leave a tenth of the grace for flushing, presence and NATS.
	window := min(n.opts.DrainWindow, n.opts.DrainGrace*9/10)
	drainCtx, cancelDrain := context.WithTimeout(ctx, n.opts.DrainGrace*9/10)
	err := n.loop.Drain(drainCtx, window)
	cancelDrain()
	if err != nil {
		n.log.Warn("drain incomplete", "err", err)
	}
	shutCtx, cancelShut := context.WithTimeout(ctx, 2*time.Second)
	_ = n.loop.Shutdown(shutCtx)
	cancelShut()
	n.stopBackends()
	n.log.Info("stopped")
	return nil
}

func (n *Node) stopBackends() {
	n.stopControl()
	if n.hub != nil {
		_ = n.hub.Close()
	}
	n.stopGossip()
	n.stopHistory()
	if n.bus != nil {
		_ = n.bus.Close()
	}
}

// fdLimit is the soft limit on open files (Go raises it to the hard limit
// at start); each connection holds one fd.
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<20 {
		return 1 << 20
	}
	return int(r.Cur)
}
