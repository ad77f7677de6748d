// Package frametest holds the WebSocket conformance cases of roomcast's frame layer
// and helpers to build client frames, so that the same cases run against
// frame.Parser (pkg/frame tests) and over real sockets against the loop and the echo
// server (pkg/loop, e2e). Each case is meant to run at least twice: with the whole
// input in one write, and one byte per write.
//
// Start with Cases; Client builds one masked client frame.
package frametest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"

	"github.com/roomcast/roomcast/pkg/frame"
)

// Case is one conformance case: client bytes in, expected server behaviour out.
type Case struct {
	// Name is unique, "group/what", usable as a subtest name.
	Name string
	// Input is what the client writes: masked client frames, possibly ending in the
	// middle of one.
	Input []byte
	// Deflate means permessage-deflate was negotiated for the connection.
	Deflate bool
	// MaxMessage is the server's message limit; 0 means frame.DefaultMaxMessage.
	MaxMessage int
	// Echo is what an echo server sends back, in order: every text and binary
	// message as it came (same opcode, same payload), and a pong with the payload of
	// every ping.
	Echo []Message
	// Pongs are the payloads of the pongs the client sent. The parser reports them;
	// the server sends nothing back for them.
	Pongs [][]byte
	// Close is the code of the server's close frame after Echo; 0 means none (the
	// connection stays open). frame.CloseNoStatus means an empty close frame.
	Close uint16
	// Fail tells who started the close: true, the server failed the connection
	// (frame.Parser.Feed returns a *frame.CloseError with code Close); false, the
	// client sent a close frame and the server echoes its code.
	Fail bool
	// Partial means Input ends inside a frame or a fragmented message, with no
	// error: the server keeps waiting (frame.Parser.InFrame is true afterwards).
	Partial bool
}

// Message is a message the server sends: a data message echoed, or a pong.
type Message struct {
	Op   frame.Opcode
	Data []byte
}

// Text is a text Message.
func Text(s string) Message { return Message{Op: frame.OpText, Data: []byte(s)} }

// Binary is a binary Message.
func Binary(b []byte) Message { return Message{Op: frame.OpBinary, Data: b} }

// Pong is the pong a server answers a ping with.
func Pong(b []byte) Message { return Message{Op: frame.OpPong, Data: b} }

// DefaultKey returns the masking key Client uses unless told otherwise. No byte is
// zero and no two are equal, so an unmasking or key-rotation bug cannot hide.
func DefaultKey() [4]byte { return [4]byte{0x37, 0xfa, 0x21, 0x3d} }

// Option changes a frame built by Client.
type Option func(*spec)

type spec struct {
	rsv      byte // 0x40 RSV1, 0x20 RSV2, 0x10 RSV3
	unmasked bool
	key      [4]byte
	length   *uint64
	ext      int // force a 2- or 8-byte extended length
}

// RSV1 sets the first reserved bit ("compressed" with permessage-deflate).
func RSV1() Option { return func(s *spec) { s.rsv |= 0x40 } }

// RSV2 sets the second reserved bit.
func RSV2() Option { return func(s *spec) { s.rsv |= 0x20 } }

// RSV3 sets the third reserved bit.
func RSV3() Option { return func(s *spec) { s.rsv |= 0x10 } }

// Unmasked sends the payload in clear with the mask bit off, which a server must
// refuse.
func Unmasked() Option { return func(s *spec) { s.unmasked = true } }

// Key sets the masking key.
func Key(k [4]byte) Option { return func(s *spec) { s.key = k } }

// Length makes the header announce n payload bytes whatever the payload given: a
// shorter payload makes a truncated frame (the rest never comes).
func Length(n uint64) Option { return func(s *spec) { s.length = &n } }

// Ext16 encodes the length in the 16-bit extended field even when it fits in 7 bits.
func Ext16() Option { return func(s *spec) { s.ext = 2 } }

// Ext64 encodes the length in the 64-bit extended field.
func Ext64() Option { return func(s *spec) { s.ext = 8 } }

// Client returns one client frame, masked with DefaultKey unless an Option says
// otherwise. op may be any 4-bit value, valid or not.
func Client(op frame.Opcode, fin bool, payload []byte, opts ...Option) []byte {
	s := spec{key: DefaultKey()}
	for _, o := range opts {
		o(&s)
	}
	n := uint64(len(payload))
	if s.length != nil {
		n = *s.length
	}
	b0 := s.rsv | byte(op&0x0F)
	if fin {
		b0 |= 0x80
	}
	var maskBit byte = 0x80
	if s.unmasked {
		maskBit = 0
	}
	out := []byte{b0}
	switch {
	case s.ext == 8 || (s.ext == 0 && n > 0xFFFF):
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, n)
	case s.ext == 2 || n > 125:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if s.unmasked {
		return append(out, payload...)
	}
	out = append(out, s.key[:]...)
	for i, c := range payload {
		out = append(out, c^s.key[i&3])
	}
	return out
}

// Join concatenates frames into one input.
func Join(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// CloseFrame returns a masked client close frame with code and reason.
func CloseFrame(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return Client(frame.OpClose, true, append(p, reason...))
}

// Deflate compresses p as a permessage-deflate message payload (RFC 7692 §7.2.1):
// DEFLATE, sync flush, trailing 00 00 FF FF removed. It uses compress/flate, not the
// server's implementation, so that the two check each other.
func Deflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// DeflateFinal compresses p ending with a final block (BFINAL=1) instead of a sync
// flush, which RFC 7692 §7.2.3.3 also allows.
func DeflateFinal(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Close()
	return b.Bytes()
}
