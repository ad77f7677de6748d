package frame

import (
	"encoding/binary"
	"unicode/utf8"
)

// DefaultMaxMessage is the message limit of a Parser whose MaxMessage is 0: the
// DESIGN.md default frame limit (64 KiB; over it the connection gets 1009).
const DefaultMaxMessage = 64 << 10

// Handler receives what a Parser finds. Slices are valid only during the call: they
// point into the caller's read buffer or into a pooled assembly buffer that is reused
// as soon as the call returns; copy what you keep. A non-nil error stops Feed, which
// returns it. The calls come from Feed, on the caller's goroutine, in wire order.
type Handler interface {
	// OnMessage gets a complete text or binary message: reassembled from its
	// fragments, inflated, and for text checked to be UTF-8.
	OnMessage(op Opcode, data []byte) error
	// OnPing gets a ping's payload (≤ 125 bytes); the caller answers with a pong
	// carrying the same bytes.
	OnPing(payload []byte) error
	// OnPong gets a pong's payload. Unsolicited pongs are legal (RFC 6455 §5.5.3): the
	// caller may ignore them.
	OnPong(payload []byte) error
	// OnClose gets a valid close frame: code is CloseNoStatus when the payload was
	// empty, and reason is valid UTF-8. The caller echoes the code and closes. The
	// Parser ignores all input after a close frame (RFC 6455 §5.5.1).
	OnClose(code uint16, reason []byte) error
}

// Parser is one connection's incremental frame parser for the client→server
// direction, where every frame must be masked. The zero value is ready to use; set
// MaxMessage and Deflate before the first Feed. A Parser is not safe for concurrent
// use: one worker feeds a connection at a time.
//
// At rest (between messages) it is 48 bytes and owns no buffer.
type Parser struct {
	// MaxMessage limits a reassembled and inflated message, in bytes; 0 means
	// DefaultMaxMessage. A message over it fails with *CloseError{Code: 1009} as soon
	// as a frame header shows it, before any of it is buffered (or, compressed, as
	// soon as inflating passes it).
	MaxMessage int

	// left is the payload still to come in the current frame. While the header is
	// read it accumulates the extended length.
	left uint64

	// msg holds the message in progress when it cannot be passed straight from the
	// caller's buffer: fragments, or a frame split across Feed calls. For a
	// compressed message it holds the compressed bytes. nil at rest.
	msg *[]byte

	// ctl holds a control frame's payload split across Feed calls. nil at rest.
	ctl *[]byte

	// mask is the masking key of the current frame, rotated so that its low byte
	// unmasks the next payload byte (see unmask).
	mask uint32

	// Deflate is true when permessage-deflate was negotiated: RSV1 is then allowed
	// on the first frame of a text or binary message and marks it compressed.
	Deflate bool

	hdrN   uint8     // header bytes read in the current frame; 0 between frames; stateDone after the end
	hdrLen uint8     // full header length, known after its 2nd byte; 0 before
	b0     byte      // first header byte of the current frame: FIN, RSV, opcode
	msgOp  byte      // opcode of the data message in progress | msgCompressed; 0 = none
	utf8   utf8State // validator state of the text message in progress
}

const (
	stateDone     = 0xFF // hdrN after a close frame or an error: Feed ignores its input
	msgCompressed = 0x80 // msgOp flag: the message had RSV1 set
)

// Feed parses b and calls h for each complete message and control frame. It may
// modify b (unmasking happens in place) but keeps no reference to it: the bytes of a
// frame not complete yet are copied, so the caller can reuse b as soon as Feed
// returns. b may end anywhere, even in the middle of a header.
//
// Feed returns a *CloseError on any protocol violation, or the first error h
// returns. After an error, and after OnClose, the connection is over: further calls
// ignore their input and return nil. Call Release when the connection ends.
//
// Hot path: see BenchmarkFeed*. A complete single-frame message inside b is unmasked
// in place and passed to OnMessage as a subslice of b, without allocating.
func (p *Parser) Feed(b []byte, h Handler) error {
	for len(b) > 0 && p.hdrN != stateDone {
		if p.hdrLen == 0 || p.hdrN < p.hdrLen {
			var n int
			var err error
			if p.hdrN == 0 && len(b) >= 2 && len(b) >= headerLen(b[1]) {
				n, err = p.wholeHeader(b)
			} else {
				n, err = p.header(b)
			}
			b = b[n:]
			if err != nil {
				return p.fail(err)
			}
			if p.hdrLen == 0 || p.hdrN < p.hdrLen {
				return nil // b ended inside the header
			}
			if p.left == 0 {
				// Empty payload: the frame is complete now, not when more bytes come.
				if err := p.payload(nil, true, h); err != nil {
					return p.fail(err)
				}
			}
			continue
		}
		k := len(b)
		if uint64(k) > p.left {
			k = int(p.left)
		}
		chunk := b[:k]
		b = b[k:]
		unmask(chunk, p.mask)
		p.mask = rotateKey(p.mask, k)
		whole := uint64(k) == p.left
		p.left -= uint64(k)
		if err := p.payload(chunk, whole, h); err != nil {
			return p.fail(err)
		}
	}
	return nil
}

// InFrame reports whether a frame or a fragmented message is partly received. The
// loop uses it to apply its stall timeout instead of its idle timeout.
func (p *Parser) InFrame() bool {
	return (p.hdrN != 0 && p.hdrN != stateDone) || p.msgOp != 0
}

// Release returns the Parser's pooled buffers and resets its state, keeping
// MaxMessage and Deflate. The Parser can be fed again afterwards, as a new
// connection.
func (p *Parser) Release() {
	putBuf(p.msg)
	putBuf(p.ctl)
	*p = Parser{MaxMessage: p.MaxMessage, Deflate: p.Deflate}
}

// fail ends the connection: further input is ignored and buffers go back to their
// pools now, not when the loop gets round to Release.
func (p *Parser) fail(err error) error {
	putBuf(p.msg)
	putBuf(p.ctl)
	p.msg, p.ctl = nil, nil
	p.hdrN, p.msgOp = stateDone, 0
	return err
}

// maxLimit caps MaxMessage so that limit arithmetic (limit+1, compressedLimit)
// cannot overflow. 256 TiB is "no limit" for any real deployment.
const maxLimit = 1 << 48

// limit is the effective MaxMessage.
func (p *Parser) limit() int {
	if p.MaxMessage > 0 {
		return min(p.MaxMessage, maxLimit)
	}
	return DefaultMaxMessage
}

// header consumes header bytes from b, validating each as soon as it is known, and
// returns how many it used. It stops at the end of the header.
func (p *Parser) header(b []byte) (int, error) {
	i := 0
	for i < len(b) && (p.hdrLen == 0 || p.hdrN < p.hdrLen) {
		c := b[i]
		i++
		switch n := p.hdrN; {
		case n == 0:
			if err := p.first(c); err != nil {
				return i, err
			}
		case n == 1:
			if err := p.second(c); err != nil {
				return i, err
			}
		case n < p.hdrLen-4:
			p.left = p.left<<8 | uint64(c)
		default:
			p.mask |= uint32(c) << (8 * (n - (p.hdrLen - 4)))
		}
		p.hdrN++
		if p.hdrLen != 0 && p.hdrN == p.hdrLen-4 {
			// The length is complete: refuse an oversized frame before its mask key,
			// let alone its payload.
			if err := p.checkLength(); err != nil {
				return i, err
			}
		}
	}
	return i, nil
}

// headerLen is the length of a client frame header whose second byte is b1.
func headerLen(b1 byte) int {
	switch b1 & 0x7F {
	case 126:
		return 2 + 2 + 4
	case 127:
		return 2 + 8 + 4
	}
	return 2 + 4
}

// wholeHeader reads a header that is entirely in b: the common case, without the
// byte-at-a-time state machine of header. The checks and their order are the same.
func (p *Parser) wholeHeader(b []byte) (int, error) {
	if err := p.first(b[0]); err != nil {
		return 1, err
	}
	if err := p.second(b[1]); err != nil {
		return 2, err
	}
	n := int(p.hdrLen)
	switch n {
	case 2 + 2 + 4:
		p.left = uint64(binary.BigEndian.Uint16(b[2:]))
	case 2 + 8 + 4:
		p.left = binary.BigEndian.Uint64(b[2:])
	}
	if err := p.checkLength(); err != nil {
		return n - 4, err
	}
	p.mask = binary.LittleEndian.Uint32(b[n-4:])
	p.hdrN = p.hdrLen
	return n, nil
}

// first validates the first header byte: FIN, RSV1–3, opcode (RFC 6455 §5.2, §5.4,
// RFC 7692 §6).
func (p *Parser) first(c byte) error {
	fin := c&0x80 != 0
	rsv := c & 0x70
	op := Opcode(c & 0x0F)
	switch op {
	case OpText, OpBinary:
		if p.msgOp != 0 {
			return errNewMessage
		}
		if rsv&0x30 != 0 || (rsv != 0 && !p.Deflate) {
			return errRSV
		}
		p.msgOp = byte(op)
		if rsv != 0 {
			p.msgOp |= msgCompressed
		}
	case OpContinuation:
		if p.msgOp == 0 {
			return errContinuation
		}
		if rsv != 0 {
			return errRSV // RSV1 belongs on the first frame of a message only
		}
	case OpClose, OpPing, OpPong:
		if rsv != 0 {
			return errRSV
		}
		if !fin {
			return errControlFragmented
		}
	default:
		return errOpcode
	}
	p.b0 = c
	return nil
}

// second validates the mask bit and the 7-bit length, and sizes the header.
func (p *Parser) second(c byte) error {
	if c&0x80 == 0 {
		return errUnmasked
	}
	n := c & 0x7F
	if Opcode(p.b0).IsControl() && n > 125 {
		return errControlLength
	}
	switch n {
	case 126:
		p.hdrLen = 2 + 2 + 4
	case 127:
		p.hdrLen = 2 + 8 + 4
	default:
		p.hdrLen = 2 + 4
		p.left = uint64(n)
	}
	// Non-minimal length encodings (RFC 6455 §5.2 says MUST be minimal) are accepted:
	// they are harmless, and refusing them would only break a sloppy client.
	return nil
}

// checkLength refuses a data frame that would take the message over the limit.
// Control frames were checked against 125 in second.
func (p *Parser) checkLength() error {
	if p.left>>63 != 0 {
		return errLengthMSB
	}
	if Opcode(p.b0).IsControl() {
		return nil
	}
	limit := uint64(p.limit())
	if p.msgOp&msgCompressed != 0 {
		limit = compressedLimit(limit)
	}
	var have uint64
	if p.msg != nil {
		have = uint64(len(*p.msg))
	}
	if p.left > limit-have { // have ≤ limit always holds
		return errTooLarge
	}
	return nil
}

// compressedLimit bounds the compressed bytes of a message whose inflated size is
// limited to limit. Deflate can expand incompressible data: stored blocks add 5 bytes
// per 64 KiB, a fixed-Huffman block up to 12.5% (9-bit literals). limit/8 + 64 covers
// both, so an incompressible message just under the limit is never refused for its
// compressed size; the inflated size is what is really limited.
func compressedLimit(limit uint64) uint64 {
	return limit + limit/8 + 64
}

// payload takes the next unmasked chunk of the current frame's payload. whole means
// chunk is the frame's entire payload: if nothing was buffered before (no earlier
// fragment, no earlier part of a control frame), it is delivered without copying.
func (p *Parser) payload(chunk []byte, whole bool, h Handler) error {
	op := Opcode(p.b0 & 0x0F)
	end := p.left == 0
	if op.IsControl() {
		if !whole || p.ctl != nil {
			p.ctl = appendBuf(p.ctl, chunk)
			if !end {
				return nil
			}
			chunk = *p.ctl
		}
		p.endFrame()
		err := p.control(op, chunk, h)
		putBuf(p.ctl)
		p.ctl = nil
		return err
	}

	// Uncompressed text is checked as it arrives, to fail before the rest of the
	// frame or message comes; compressed text is checked once inflated, in message.
	if p.msgOp == byte(OpText) && !p.utf8.feed(chunk) {
		return errUTF8
	}
	fin := p.b0&0x80 != 0
	if !whole || !fin || p.msg != nil {
		if len(chunk) > 0 {
			p.msg = appendBuf(p.msg, chunk)
		}
		if !end {
			return nil
		}
		p.endFrame()
		if !fin {
			return nil
		}
		if p.msg != nil {
			chunk = *p.msg
		}
	} else {
		p.endFrame()
	}
	return p.message(chunk, h)
}

// endFrame resets the per-frame state once a frame's last byte is in.
func (p *Parser) endFrame() {
	p.hdrN, p.hdrLen, p.mask = 0, 0, 0
}

// message delivers a complete data message and resets the message state.
func (p *Parser) message(data []byte, h Handler) error {
	op := Opcode(p.msgOp &^ msgCompressed)
	compressed := p.msgOp&msgCompressed != 0
	p.msgOp = 0
	var err error
	if compressed {
		var out *[]byte
		out, err = inflate(data, p.limit())
		if err == nil {
			if op == OpText && !utf8.Valid(*out) {
				err = errUTF8
			} else {
				err = h.OnMessage(op, *out)
			}
		}
		putBuf(out)
	} else if op == OpText && !p.utf8.done() {
		err = errUTF8 // the message ended inside a character
	} else {
		err = h.OnMessage(op, data)
	}
	p.utf8 = utf8Accept
	putBuf(p.msg)
	p.msg = nil
	return err
}

// control delivers a ping, pong or close frame (RFC 6455 §5.5).
func (p *Parser) control(op Opcode, payload []byte, h Handler) error {
	switch op {
	case OpPing:
		return h.OnPing(payload)
	case OpPong:
		return h.OnPong(payload)
	}
	code := CloseNoStatus
	var reason []byte
	switch {
	case len(payload) == 1:
		return errCloseLength
	case len(payload) >= 2:
		code = uint16(payload[0])<<8 | uint16(payload[1])
		reason = payload[2:]
		if !ValidCloseCode(code) {
			return errCloseCode
		}
		// Issue 13 asks 1002 here; Autobahn 7.5.1 accepts 1002 or 1007.
		if !utf8.Valid(reason) {
			return errCloseReason
		}
	}
	// Nothing after a close frame is read (RFC 6455 §5.5.1): drop a message in
	// progress and ignore the rest of the input.
	p.hdrN, p.msgOp = stateDone, 0
	err := h.OnClose(code, reason)
	putBuf(p.msg)
	p.msg = nil
	return err
}
