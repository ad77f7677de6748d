package client

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// This file is the frame layer: reading whole messages off the socket,
// writing masked frames, control frames and permessage-deflate.

// errProtocol marks frames that break RFC 6455; the client answers 1002.
var errProtocol = errors.New("client: websocket protocol error")

// errTooLarge marks messages over Options.MaxMessageSize; the client
// answers 1009.
var errTooLarge = errors.New("client: message too large")

// bufKeep is the largest read buffer kept between messages; a bigger one
// (after a huge message or batch) is dropped so idle clients stay small.
const bufKeep = 64 << 10

// readLoop is the client's only goroutine: it reads frames until the
// connection ends and then fails whatever is still pending.
func (c *Client) readLoop() {
	err := c.readFrames()
	c.finish(err)
}

func (c *Client) readFrames() error {
	var (
		msg        []byte // the message being assembled from fragments
		inMessage  bool
		compressed bool
		binaryMsg  bool
		ctl        [125]byte // control payloads are at most 125 bytes
	)
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return err
		}
		if h.Masked {
			return c.abort(fmt.Errorf("%w: masked server frame", errProtocol))
		}
		if h.OpCode.IsControl() {
			if !h.Fin || h.Length > 125 || h.Rsv != 0 {
				return c.abort(fmt.Errorf("%w: bad control frame", errProtocol))
			}
			p := ctl[:h.Length]
			if _, err := io.ReadFull(c.br, p); err != nil {
				return err
			}
			switch h.OpCode {
			case ws.OpPing:
				// Answer from the reader: a pong must not wait behind a
				// slow user; errors surface on the next read anyway.
				_ = c.writeFrame(context.Background(), ws.OpPong, p)
			case ws.OpClose:
				c.gotClose(p)
				return nil
			}
			continue
		}
		switch h.OpCode {
		case ws.OpContinuation:
			if !inMessage || h.Rsv != 0 {
				return c.abort(fmt.Errorf("%w: unexpected continuation frame", errProtocol))
			}
		case ws.OpText, ws.OpBinary:
			if inMessage {
				return c.abort(fmt.Errorf("%w: new message inside a fragmented one", errProtocol))
			}
			rsv1 := h.Rsv1()
			if h.Rsv2() || h.Rsv3() || (rsv1 && c.inflater == nil) {
				return c.abort(fmt.Errorf("%w: reserved bits set", errProtocol))
			}
			inMessage, compressed, binaryMsg = true, rsv1, h.OpCode == ws.OpBinary
			msg = msg[:0]
		default:
			return c.abort(fmt.Errorf("%w: reserved opcode %d", errProtocol, h.OpCode))
		}
		if int64(len(msg))+h.Length > int64(c.maxMsg) {
			return c.abort(fmt.Errorf("%w: over %d bytes", errTooLarge, c.maxMsg))
		}
		n := len(msg)
		msg = grow(msg, int(h.Length))
		if _, err := io.ReadFull(c.br, msg[n:]); err != nil {
			return err
		}
		if !h.Fin {
			continue
		}
		inMessage = false
		payload := msg
		if compressed {
			if payload, err = c.inflater.inflate(msg, c.maxMsg); err != nil {
				return c.abort(err)
			}
		}
		if binaryMsg {
			// The node speaks JSON text only; a binary message is a bug
			// on its side, not worth the connection.
			c.log.Debug("roomcast client: ignoring binary message", "len", len(payload))
		} else {
			c.dispatch(payload)
		}
		if cap(msg) > bufKeep {
			msg = nil
		}
	}
}

// grow extends b by n bytes, reallocating if needed.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

// abort closes with 1009 for errTooLarge, else 1002, and returns err.
func (c *Client) abort(err error) error {
	code := 1002
	if errors.Is(err, errTooLarge) {
		code = CloseTooLarge
	}
	c.sendClose(code, "")
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: code, Err: err}
	}
	c.mu.Unlock()
	return err
}

// gotClose records the code the node closed with and, unless we started
// the closing handshake, echoes it as RFC 6455 §5.5.1 asks.
func (c *Client) gotClose(p []byte) {
	ce := &CloseError{Code: CloseNoStatus}
	if len(p) >= 2 {
		ce.Code = int(binary.BigEndian.Uint16(p))
		if r := p[2:]; utf8.Valid(r) {
			ce.Reason = string(r)
		}
	}
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = ce
	}
	c.mu.Unlock()
	if ce.Code == CloseNoStatus {
		c.sendClose(CloseNormal, "")
	} else {
		c.sendClose(ce.Code, "")
	}
}

// sendClose writes one close frame; later data writes fail with ErrClosed.
func (c *Client) sendClose(code int, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return
	}
	body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
	_ = c.writeLocked(context.Background(), ws.OpClose, body)
	c.wclosed = true
}

// writeFrame writes p as one unfragmented frame, masked as clients must.
// Concurrent callers are serialised; a failed write closes the socket, so
// the reader ends and pending calls fail.
func (c *Client) writeFrame(ctx context.Context, op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return c.closedErr()
	}
	return c.writeLocked(ctx, op, p)
}

func (c *Client) writeLocked(ctx context.Context, op ws.OpCode, p []byte) error {
	deadline := time.Now().Add(c.writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.conn.SetWriteDeadline(deadline)
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask()}
	if op == ws.OpText && c.deflater != nil {
		z, err := c.deflater.deflate(p)
		if err != nil {
			return err
		}
		p = z
		h.Rsv = ws.Rsv(true, false, false)
	}
	h.Length = int64(len(p))
	// Mask a copy: p belongs to the caller (or to the deflater).
	c.wbuf = append(c.wbuf[:0], p...)
	ws.Cipher(c.wbuf, h.Mask, 0)
	err := ws.WriteHeader(c.bw, h)
	if err == nil {
		_, err = c.bw.Write(c.wbuf)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if cap(c.wbuf) > bufKeep {
		c.wbuf = nil
	}
	if err != nil {
		// A partly written frame leaves the stream unusable.
		c.wclosed = true
		_ = c.conn.Close()
		return fmt.Errorf("client: write: %w", err)
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// deflateOffers are the permessage-deflate offers, most preferred first.
// Without server context takeover we need no 32 KiB window per client; the
// second offer still gets compression from a server that insists on
// keeping its context (we then keep the window, see inflater).
var deflateOffers = []httphead.Option{
	wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}.Option(),
	wsflate.Parameters{ClientNoContextTakeover: true}.Option(),
}

// negotiated returns the accepted permessage-deflate parameters, if any.
func negotiated(hs ws.Handshake) (wsflate.Parameters, bool, error) {
	for _, opt := range hs.Extensions {
		if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
			continue
		}
		var p wsflate.Parameters
		if err := p.Parse(opt); err != nil {
			return p, false, fmt.Errorf("client: permessage-deflate response: %w", err)
		}
		return p, true, nil
	}
	return wsflate.Parameters{}, false, nil
}

// deflater compresses outgoing messages. It never uses context takeover
// (we offered client_no_context_takeover), so one flate.Writer is reset per
// message.
type deflater struct {
	w   *wsflate.Writer
	buf bytes.Buffer
}

func newDeflater() *deflater {
	d := &deflater{}
	d.w = wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed) // err only for a bad level
		return f
	})
	return d
}

// deflate returns p compressed; the result is valid until the next call.
func (d *deflater) deflate(p []byte) ([]byte, error) {
	d.buf.Reset()
	d.w.Reset(&d.buf)
	if _, err := d.w.Write(p); err != nil {
		return nil, fmt.Errorf("client: deflate: %w", err)
	}
	if err := d.w.Flush(); err != nil {
		return nil, fmt.Errorf("client: deflate: %w", err)
	}
	return d.buf.Bytes(), nil
}

// inflater decompresses incoming messages. When the server keeps its
// compression context across messages (no server_no_context_takeover in
// its answer), it keeps the last 32 KiB of output as the next dictionary.
type inflater struct {
	r        *wsflate.Reader
	src      bytes.Reader
	out      bytes.Buffer
	takeover bool
	dict     []byte
}

// flateResetter adapts compress/flate's reader, whose Reset also takes a
// dictionary, to wsflate's ReadResetter so one reader is reused.
type flateResetter struct {
	io.ReadCloser
	in *inflater
}

func (f *flateResetter) Reset(src io.Reader) {
	_ = f.ReadCloser.(flate.Resetter).Reset(src, f.in.dict)
}

func newInflater(takeover bool) *inflater {
	in := &inflater{takeover: takeover}
	in.r = wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
		return &flateResetter{ReadCloser: flate.NewReaderDict(r, in.dict), in: in}
	})
	return in
}

// inflate returns the decompressed message, valid until the next call.
func (in *inflater) inflate(p []byte, limit int) ([]byte, error) {
	in.src.Reset(p)
	in.r.Reset(&in.src)
	in.out.Reset()
	n, err := in.out.ReadFrom(io.LimitReader(in.r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", errProtocol, err)
	}
	if n > int64(limit) {
		return nil, fmt.Errorf("%w: inflated over %d bytes", errTooLarge, limit)
	}
	out := in.out.Bytes()
	if in.takeover {
		in.dict = append(in.dict, out...)
		if over := len(in.dict) - wsflate.MaxLZ77WindowSize; over > 0 {
			in.dict = append(in.dict[:0], in.dict[over:]...)
		}
	}
	if in.out.Cap() > bufKeep {
		in.out = bytes.Buffer{}
	}
	return out, nil
}
