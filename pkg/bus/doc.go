// Package bus owns the node's one NATS connection: to an external NATS
// cluster, or to a nats-server with JetStream embedded in the process when no
// URL is given. It also holds the subject names of DESIGN.md (Subjects).
//
// Start with Connect and Options. The rest of the node holds a *Bus and uses
// its NC (core NATS) and JS (JetStream) fields directly; this package adds
// only what every user of the connection needs: reconnect policy, logging of
// connection changes, the NATSConnected gauge, Up for "refuse now instead of
// buffering", and Ready for /readyz.
//
// Reconnects are automatic and never give up. While the connection is down,
// publishes fail at once (the reconnect buffer is off, see Options) and Up
// reports false, so callers answer `unavailable` rather than queueing
// messages that would arrive late, out of order, or not at all.
package bus
