package frame

import "strconv"

// Opcode is the 4-bit frame type of RFC 6455 §5.2.
type Opcode byte

// Opcodes defined by RFC 6455; the others are reserved and fail the connection.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (close, ping, pong or a reserved
// 0xB–0xF): control frames are never fragmented and carry at most 125 bytes.
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// String returns the RFC name of op, for logs and test failures.
func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode(" + strconv.Itoa(int(op)) + ")"
}

// Close codes of RFC 6455 §7.4.1 and of roomcast (DESIGN.md "Close codes"). Clients
// should reconnect after 1001, 1011, 1012 and 4009 (with backoff); 4001, 4003 and
// 4008 mean that retrying the same request will fail again.
const (
	CloseNormal         uint16 = 1000
	CloseGoingAway      uint16 = 1001 // node draining: reconnect elsewhere
	CloseProtocolError  uint16 = 1002
	CloseUnsupported    uint16 = 1003
	CloseNoStatus       uint16 = 1005 // never sent; reported when a close frame has no payload
	CloseAbnormal       uint16 = 1006 // never sent; the socket ended without a close frame
	CloseInvalidPayload uint16 = 1007
	ClosePolicy         uint16 = 1008
	CloseTooLarge       uint16 = 1009
	CloseInternal       uint16 = 1011
	CloseServiceRestart uint16 = 1012
	CloseKeyInvalid     uint16 = 4001
	CloseForbidden      uint16 = 4003
	CloseRateLimited    uint16 = 4008
	CloseSlowConsumer   uint16 = 4009
)

// MaxCloseReason is the longest close reason that fits a control frame: 125 bytes of
// payload minus the 2-byte code.
const MaxCloseReason = 123

// ValidCloseCode reports whether code may appear in a close frame on the wire.
// Valid: 1000–1003, 1007–1014 (1012–1014 were registered with IANA after RFC 6455),
// and 3000–4999 (libraries, applications). Invalid: below 1000, 1004 (reserved), 1005
// and 1006 (never sent), 1015 (TLS failure, never sent), 1016–2999 (unassigned) and
// 5000 and above. This matches Autobahn's cases 7.7.x and 7.9.x.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// CloseError means the connection must be failed: the server sends a close frame
// with Code (and Reason, at most [MaxCloseReason] bytes), then closes the socket.
// The Parser returns shared *CloseError values: treat them as read-only.
type CloseError struct {
	Code   uint16
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string {
	return "websocket: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// The Parser's failures. Shared values: Feed never allocates an error. The reasons go
// to the peer in the close frame, so they say what was wrong, not how we found it.
var (
	errRSV               = &CloseError{CloseProtocolError, "reserved bits set"}
	errOpcode            = &CloseError{CloseProtocolError, "unknown opcode"}
	errUnmasked          = &CloseError{CloseProtocolError, "client frame not masked"}
	errControlLength     = &CloseError{CloseProtocolError, "control frame over 125 bytes"}
	errControlFragmented = &CloseError{CloseProtocolError, "fragmented control frame"}
	errContinuation      = &CloseError{CloseProtocolError, "continuation frame without a message"}
	errNewMessage        = &CloseError{CloseProtocolError, "new message before the previous one finished"}
	errLengthMSB         = &CloseError{CloseProtocolError, "frame length has its most significant bit set"}
	errCloseLength       = &CloseError{CloseProtocolError, "close frame with a 1-byte payload"}
	errCloseCode         = &CloseError{CloseProtocolError, "invalid close code"}
	errCloseReason       = &CloseError{CloseProtocolError, "close reason is not valid UTF-8"}
	errUTF8              = &CloseError{CloseInvalidPayload, "text message is not valid UTF-8"}
	errInflate           = &CloseError{CloseInvalidPayload, "compressed message is corrupt"}
	errTooLarge          = &CloseError{CloseTooLarge, "message too large"}
)
