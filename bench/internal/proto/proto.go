// Package proto is the line protocol between the bench harness and its load
// client processes: the harness writes one Command as a JSON line to the
// client's stdin, the client answers with one Reply line on stdout. Logs go to
// stderr. One command at a time, so the harness can sample the server between
// phases with nothing else in flight.
package proto

import (
	"time"

	"github.com/roomcast/roomcast/bench/internal/hist"
	"github.com/roomcast/roomcast/bench/internal/wsload"
)

// Command is one request to a load client. Exactly one of the pointer fields
// is set, named by Cmd.
type Command struct {
	Cmd     string   `json:"cmd"` // dial, wait, stats, publish, close, quit
	Dial    *Dial    `json:"dial,omitempty"`
	Wait    *Wait    `json:"wait,omitempty"`
	Publish *Publish `json:"publish,omitempty"`
}

// Protocols a load client speaks after the upgrade.
const (
	Roomcast   = "roomcast"   // join with {"type":"join"}, acks are {"type":"ack"}
	Centrifugo = "centrifugo" // connect + subscribe commands, acks are subscribe replies
)

// Dial opens connections.
type Dial struct {
	N           int      `json:"n"`
	Concurrency int      `json:"concurrency"`
	Server      string   `json:"server"`          // host:port; empty = the client's -server
	Path        string   `json:"path"`            // request path for every connection
	Paths       []string `json:"paths,omitempty"` // per-connection paths (one-time keys); overrides Path
	Group       int      `json:"group"`           // latency group (wsload.Groups)
	Protocol    string   `json:"protocol"`        // Roomcast (default) or Centrifugo
	// Room, if set, is joined by every connection right after the upgrade.
	Room string `json:"room,omitempty"`
	// Ring > 0 makes connection i (client-wide dial order) join rooms
	// r.<i mod Ring> and r.<(i+1) mod Ring>: Ring rooms of 2 members each
	// when the client holds Ring connections.
	Ring int `json:"ring,omitempty"`
}

// Wait blocks until the client has seen at least Acks acknowledgements in
// total, or Timeout passed.
type Wait struct {
	Acks    uint64        `json:"acks"`
	Timeout time.Duration `json:"timeout_ns"`
}

// Publish drives traffic and measures deliveries at this client.
type Publish struct {
	// Via is how messages are published: "nats" (a plain NATS publish to
	// Prefix+target), "http" (Centrifugo's HTTP API), "ws" (a roomcast
	// client publish from this client's connections PubConns).
	Via      string   `json:"via"`
	NATS     string   `json:"nats,omitempty"`
	Prefix   string   `json:"prefix,omitempty"` // NATS subject prefix, e.g. "rc.room."
	HTTP     string   `json:"http,omitempty"`   // Centrifugo API base URL
	APIKey   string   `json:"api_key,omitempty"`
	Targets  []string `json:"targets"` // rooms or channels
	Random   bool     `json:"random"`  // random target per message (else round robin)
	PubConns []int    `json:"pub_conns,omitempty"`
	// Size is the size of each message's data in bytes (JSON carrying the
	// publish timestamp, padded).
	Size int `json:"size"`
	// PerMsg is how many deliveries each message makes at this client.
	PerMsg int `json:"per_msg"`
	// Window > 0: closed loop, at most Window messages in flight
	// (published but not yet delivered everywhere). Rate > 0: open loop at
	// Rate messages per second.
	Window   int           `json:"window,omitempty"`
	Rate     float64       `json:"rate,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Latency records publish→receive latency for this run.
	Latency bool `json:"latency"`
}

// Reply is a load client's answer.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`

	Dial    *wsload.DialResult `json:"dial,omitempty"`
	Stats   *wsload.Stats      `json:"stats,omitempty"`
	Publish *PublishResult     `json:"publish,omitempty"`
	Conns   int                `json:"conns"`
}

// PublishResult is what a Publish command measured.
type PublishResult struct {
	Published uint64        `json:"published"`
	Expected  uint64        `json:"expected"`  // Published × PerMsg
	Delivered uint64        `json:"delivered"` // deliveries seen during the run (after the drain)
	Elapsed   time.Duration `json:"elapsed_ns"`
	// Drained is false if deliveries stopped short of Expected for 2 s:
	// messages were lost (dropped by a full queue or a cut consumer).
	Drained bool `json:"drained"`
	// Client-side counters over the run.
	Stats wsload.Stats `json:"stats"`
	// Latency per connection group; group 0 holds everything in
	// single-node runs.
	Latency [wsload.Groups]hist.Snapshot `json:"latency"`
}
