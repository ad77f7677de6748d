package frame

import (
	"bytes"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// Negotiator answers the client's permessage-deflate offers (RFC 7692 §7.1) during
// one WebSocket upgrade. Use one per upgrade, not concurrently: the zero value is
// ready, and Reset makes it reusable. Plug it into gobwas/ws:
//
//	var n frame.Negotiator
//	u := upgrader // a ws.Upgrader value copied per upgrade
//	u.Negotiate = n.Negotiate
//	... u.Upgrade(conn) ...
//	parser.Deflate = n.Accepted()
//
// It accepts the first acceptable offer, always with server_no_context_takeover and
// client_no_context_takeover, so that no compression state lives on a connection
// between messages (pooled flate readers and writers; a broadcast compressed once is
// valid for every member):
//
//   - client_max_window_bits (with or without a value) is accepted and not echoed:
//     our inflater has a 32 KiB window, enough for any window the client picks.
//   - server_max_window_bits=15 is accepted and echoed (RFC 7692 §7.1.2.1 requires
//     the echo). Below 15 the offer is declined: the flate writer always uses a
//     32 KiB window, and a client that asked for less could not inflate our frames.
//   - An offer with an unknown, duplicated or malformed parameter is declined, and
//     the handshake goes on without compression (RFC 7692 §5: "decline").
//
// Why not wsflate.Extension{Parameters: {ServerNoContextTakeover: true,
// ClientNoContextTakeover: true}}: it returns an error for a malformed offer, which
// makes gobwas/ws fail the whole upgrade (HTTP 500) instead of declining the offer,
// and it declines server_max_window_bits=15, which we can honour. Its parameter
// parser is right, and Negotiator uses it.
type Negotiator struct {
	accepted bool
}

// Negotiate has the signature of ws.Upgrader.Negotiate. It returns the response
// option for an accepted offer, or a zero Option (Size() == 0) to decline it. It
// never returns an error: a bad offer is declined, not fatal.
func (n *Negotiator) Negotiate(offer httphead.Option) (httphead.Option, error) {
	if n.accepted {
		return httphead.Option{}, nil // offers come in order of preference: keep the first
	}
	resp, ok := NegotiateDeflate(offer)
	n.accepted = ok
	return resp, nil
}

// Accepted reports whether permessage-deflate was negotiated: set Parser.Deflate to
// it and pass it to Prepared.Bytes.
func (n *Negotiator) Accepted() bool { return n.accepted }

// Reset makes n ready for another upgrade.
func (n *Negotiator) Reset() { n.accepted = false }

// NegotiateDeflate decides the answer to one extension offer, as Negotiator does,
// without the "first accepted offer wins" state. ok is false when offer is not
// permessage-deflate or is declined.
func NegotiateDeflate(offer httphead.Option) (resp httphead.Option, ok bool) {
	if !bytes.Equal(offer.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, false
	}
	var p wsflate.Parameters
	if err := p.Parse(offer); err != nil {
		return httphead.Option{}, false
	}
	if p.ServerMaxWindowBits.Defined() && p.ServerMaxWindowBits < 15 {
		return httphead.Option{}, false
	}
	want := wsflate.Parameters{
		ServerNoContextTakeover: true,
		ClientNoContextTakeover: true,
		ServerMaxWindowBits:     p.ServerMaxWindowBits, // 0 (absent) or 15
	}
	return want.Option(), true
}
