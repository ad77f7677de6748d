// Package e2e holds black-box tests of real roomcast processes: built
// roomcast-node and roomcast-mint binaries, a real NATS server, real
// sockets. Nothing in here imports the node's packages; the tests speak
// only DESIGN.md's contract (wire protocol, HTTP endpoints, NATS subjects,
// command line) through pkg/client, net/http, nats.go and raw gobwas/ws.
//
// Run them with `go test ./e2e` (they build the binaries once per run) or
// against prebuilt binaries with ROOMCAST_E2E_BIN=bin; see e2e/harness.
package e2e
