// Package client is the Go client of roomcast: it dials an edge node over
// WebSocket, joins rooms, publishes, and receives events and presence as
// DESIGN.md's wire protocol describes them.
//
// It is used by the e2e tests, the benchmarks and Go services that want to
// sit in a room like a browser does. Services that only publish should not
// use it: a plain NATS publish to rc.room.<room> is cheaper.
//
// # Where to start
//
// Dial connects with a one-time key URL (ws://host/_/connect/<key>) or a
// continuous route (ws://host/chat) and returns once the node's welcome has
// arrived. Join, Leave, Publish, Presence, Send, RPC and Ping each send one
// message with a fresh id and wait for the node's answer to that id (ack,
// reply, pong or error); server errors come back as *Error. Everything the
// node pushes without being asked (room events, direct messages, presence
// changes) arrives as an Event, through Options.OnEvent or the Events
// channel.
//
// # History and reconnects
//
// In rooms that keep history, events carry Seq and Epoch and the client
// keeps its Position per room; JoinSince re-joins from a position and the
// node replays what was missed (Joined.Recovered), and History reads pages
// of a room's history. A Client is one connection: Resilient (DialResilient)
// is the one to use when a connection must survive a drained or killed node
// or a network change: it dials again with a fresh URL, re-joins its rooms
// with since, and delivers the events of every connection on one channel.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each Client owns exactly one
// goroutine, the reader, which parses frames, answers pings, resolves
// pending calls and delivers events in the order the node sent them. That is
// one goroutine per connection, which is fine on the client side; the node
// is the side that must not spend one.
//
// When the connection ends, for whatever reason, Done is closed, every
// pending call fails with an error matching ErrClosed, and Err and CloseCode
// tell why (the close code and reason the node sent, 1006 when the socket
// died without a close frame).
package client
