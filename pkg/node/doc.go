// Package node wires one roomcast edge node: NATS (bus), one-time keys,
// rooms and presence (room, presence), the epoll connection loop (loop) and
// the HTTP endpoints, from one Options value. It reads no flags, env or
// files; cmd/node does that and calls Run.
//
// Where to start reading: Run (node.go) for the life of a node, upgrade.go
// for who may connect, http.go for the HTTP API.
package node
